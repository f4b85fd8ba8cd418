"""`SonoranClient`: the one object the bot uses to talk to the CAD, whichever API version."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import aiohttp

from .api import NewCall, SonoranApi
from .models import Account, CallId, CallList, CallType, PlanInfo, Server, ServerId, UnitPage
from .ratelimit import LimiterFactory
from .records import LookupQuery, LookupRecord
from .redaction import Redactor
from .singleflight import SingleFlight
from .transport import ANY_SPEND, HttpCore, Spend
from .v1 import V1Api
from .v2 import V2Api

DEFAULT_CLOSED_LIMIT = 10  # Sonoran's default page of closed calls; the documented maximum is 100
MAX_CLOSED_LIMIT = 100


class SonoranClient:
    """Typed operations on Sonoran CAD over a shared aiohttp session.

    Concurrent `get_calls` for the same arguments share one HTTP request (single flight), so the
    feed, `/calls` and autocomplete never spend the scarce call-list budget twice at once.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        rate_limits: Mapping[str, int],
        api_version: Literal[1, 2] = 2,
        community_id: str = "",
        server_id: ServerId = 1,
        timeout: float = 10.0,
        max_wait: float = 10.0,
        retry_backoff: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        limiter_factory: LimiterFactory | None = None,
    ) -> None:
        """`rate_limits`: requests a minute per operation (every one in `OPERATIONS`);
        `max_wait`: the longest a request waits for a rate-limit slot before it raises RateLimited;
        `retry_backoff`: the first pause before a read is sent again after a fault;
        `clock`: what the rate limiters count time by (a simulation passes its own);
        `limiter_factory`: each operation's budget (`HttpCore`; by default this process's own)."""
        self.http = HttpCore(
            session,
            base_url,
            rate_limits=rate_limits,
            timeout=timeout,
            redactor=Redactor(api_key),
            max_wait=max_wait,
            retry_backoff=retry_backoff,
            clock=clock,
            limiter_factory=limiter_factory,
        )
        self.api: SonoranApi = (
            V1Api(self.http, community_id, api_key) if api_version == 1 else V2Api(self.http, api_key)
        )
        self.default_server_id = server_id
        self._call_lists: SingleFlight[CallList] = SingleFlight()

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
        server_id: ServerId | None = None,
    ) -> CallId:
        """Files a 911 call and returns its id. Never retried: a timeout raises OutcomeUnknown."""
        call = NewCall(caller, location, description, emergency, metadata)
        return await self.api.file_911(server_id or self.default_server_id, call)

    async def remove_911(self, call_id: CallId, *, server_id: ServerId | None = None) -> None:
        await self.api.remove_911(server_id or self.default_server_id, call_id)

    async def add_note(self, call_id: CallId, note: str, *, label: str, server_id: ServerId | None = None) -> None:
        await self.api.add_note(server_id or self.default_server_id, call_id, note, label)

    async def close_call(self, call_id: CallId, *, server_id: ServerId | None = None) -> None:
        await self.api.close_call(server_id or self.default_server_id, call_id)

    async def get_version(self) -> PlanInfo:
        return await self.api.get_version()

    async def attach_units(self, call_id: CallId, *, discord_id: int, server_id: ServerId | None = None) -> list[int]:
        """Attaches the units on duty of the member's linked CAD account; their identifier ids (v2)."""
        return await self.api.attach_units(server_id or self.default_server_id, call_id, discord_id=discord_id)

    async def detach_units(self, *, discord_id: int, server_id: ServerId | None = None) -> list[int]:
        return await self.api.detach_units(server_id or self.default_server_id, discord_id=discord_id)

    async def get_units(self, server_id: ServerId, *, offset: int = 0, wait: float = 0.0) -> UnitPage:
        """One page of the units on duty. Like the feed's call-list polls: one request at most, not
        retried (the next poll is the retry); RateLimited when no slot of the minute's budget comes
        within `wait` seconds."""
        return await self.api.get_units(server_id, offset=offset, spend=Spend(retry=False, max_wait=wait))

    async def set_unit_status(self, status: int, *, discord_id: int, server_id: ServerId | None = None) -> int | None:
        """How many units changed (Sonoran's `updated`), when the CAD says."""
        return await self.api.set_unit_status(server_id or self.default_server_id, status, discord_id=discord_id)

    async def set_unit_panic(self, panic: bool, *, discord_id: int, server_id: ServerId | None = None) -> int | None:
        return await self.api.set_unit_panic(server_id or self.default_server_id, panic, discord_id=discord_id)

    async def get_account(self, *, discord_id: int, wait: bool = True) -> Account:
        """The member's linked CAD account. `wait=False`: one request at most, now or never (a
        RateLimited when the minute's budget is spent), for lookups that have a fallback."""
        spend = ANY_SPEND if wait else Spend(retry=False, max_wait=0.0)
        return await self.api.get_account(discord_id=discord_id, spend=spend)

    async def get_servers(self) -> list[Server]:
        return await self.api.get_servers()

    async def lookup(self, query: LookupQuery) -> list[LookupRecord]:
        """Records by name or plate: one request at most, now or never (RateLimited when the
        minute's budget is spent), never sent again after a fault: a member is waiting, the budget
        is shared with the game server, and Sonoran punishes repeated bad requests."""
        return await self.api.lookup(query, spend=Spend(retry=False, max_wait=0.0))

    async def get_calls(
        self,
        server_id: ServerId | None = None,
        *,
        closed_limit: int = DEFAULT_CLOSED_LIMIT,
        closed_offset: int = 0,
        call_type: CallType = CallType.ALL,
        reserve: int = 0,
        retry: bool = True,
    ) -> CallList:
        """`reserve`: slots of the rate window this request must leave to others (who is owed
        what is the caller's business). `retry=False`: one request at most, not retried after a
        fault or a 429."""
        server = server_id or self.default_server_id
        limit = max(1, min(closed_limit, MAX_CLOSED_LIMIT))
        offset = max(0, closed_offset)
        spend = Spend(reserve=reserve, retry=retry)
        return await self._call_lists.run(
            (server, limit, offset, int(call_type), spend),
            lambda: self.api.get_calls(
                server, closed_limit=limit, closed_offset=offset, call_type=call_type, spend=spend
            ),
            name=f"sonoran-get-calls-{server}",
        )
