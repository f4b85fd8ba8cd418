"""`SonoranClient`: the one object the bot uses to talk to the CAD, whichever API version."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from ..config import SonoranSettings
from .api import NewCall, SonoranApi
from .errors import Redactor
from .models import CallList, CallType, PlanInfo, Server
from .transport import HttpCore, Spend
from .v1 import V1Api
from .v2 import V2Api

DEFAULT_CLOSED_LIMIT = 10  # Sonoran's default page of closed calls; the documented maximum is 100
MAX_CLOSED_LIMIT = 100


class SonoranClient:
    """Typed operations on Sonoran CAD over a shared aiohttp session.

    Concurrent `get_calls` for the same arguments share one HTTP request (single flight), so the
    feed, `/calls` and autocomplete never spend the scarce call-list budget twice at once.
    """

    def __init__(self, session: aiohttp.ClientSession, settings: SonoranSettings, **http_options: Any) -> None:
        key = settings.api_key.get_secret_value()
        self.http = HttpCore(
            session,
            settings.base_url,
            rate_limits=settings.rate_limits.model_dump(),
            timeout=settings.timeout_seconds,
            redactor=Redactor(key),
            **http_options,
        )
        self.api: SonoranApi = (
            V1Api(self.http, settings.community_id, key) if settings.api_version == 1 else V2Api(self.http, key)
        )
        self.default_server_id = settings.server_id
        # Call-list slots per rate window kept for the feed's polls; requests made for members
        # (`interactive=True`) only use what is left, so a member paging can never starve the feed.
        self.feed_reserve = 0
        self._inflight: dict[tuple[int, int, int, int, Spend], asyncio.Task[CallList]] = {}

    def __repr__(self) -> str:
        return f"SonoranClient(v{self.api.version}, {self.http.base_url!r})"

    @property
    def api_version(self) -> int:
        return self.api.version

    async def file_911(
        self,
        *,
        caller: str,
        location: str,
        description: str,
        emergency: bool = True,
        metadata: dict[str, Any] | None = None,
        server_id: int | None = None,
    ) -> int:
        """Files a 911 call and returns its id. Never retried: a timeout raises OutcomeUnknown."""
        call = NewCall(caller, location, description, emergency, metadata)
        return await self.api.file_911(server_id or self.default_server_id, call)

    async def remove_911(self, call_id: int, *, server_id: int | None = None) -> None:
        await self.api.remove_911(server_id or self.default_server_id, call_id)

    async def add_note(self, call_id: int, note: str, *, label: str, server_id: int | None = None) -> None:
        await self.api.add_note(server_id or self.default_server_id, call_id, note, label)

    async def close_call(self, call_id: int, *, server_id: int | None = None) -> None:
        await self.api.close_call(server_id or self.default_server_id, call_id)

    async def get_version(self) -> PlanInfo:
        return await self.api.get_version()

    async def get_servers(self) -> list[Server]:
        return await self.api.get_servers()

    async def get_calls(
        self,
        server_id: int | None = None,
        *,
        closed_limit: int = DEFAULT_CLOSED_LIMIT,
        closed_offset: int = 0,
        call_type: CallType = CallType.ALL,
        interactive: bool = False,
        retry: bool = True,
    ) -> CallList:
        """`interactive`: for a member, within what the feed's polls leave over. `retry=False`: one
        request at most, not retried after a fault or a 429 (the feed's next cycle is its retry)."""
        server = server_id or self.default_server_id
        limit = max(1, min(closed_limit, MAX_CLOSED_LIMIT))
        offset = max(0, closed_offset)
        spend = Spend(reserve=self.feed_reserve if interactive else 0, retry=retry)
        key = (server, limit, offset, int(call_type), spend)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self.api.get_calls(server, closed_limit=limit, closed_offset=offset, call_type=call_type, spend=spend),
                name=f"sonoran-get-calls-{server}",
            )
            self._inflight[key] = task
            task.add_done_callback(lambda t, k=key: self._forget(k, t))  # type: ignore[misc]
        # shield: one impatient caller giving up must not cancel the request the others wait on
        return await asyncio.shield(task)

    def _forget(self, key: tuple[int, int, int, int, Spend], task: asyncio.Task[CallList]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so that nobody-was-waiting is not logged as lost
