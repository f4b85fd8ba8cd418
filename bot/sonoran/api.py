"""The interface both API versions implement; everything above it is version-blind."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadReply, NeedsApiV2, SonoranError
from .models import Account, CallList, CallMemo, CallType, PlanInfo, Server, UnitPage
from .numbers import read_id
from .records import LookupQuery, LookupRecord, records_from_payload
from .transport import ANY_SPEND, HttpCore, Reply, Request, Spend

LAST_CALL_LISTS = 16


@dataclass(frozen=True)
class NewCall:
    """A 911 call to file."""

    caller: str
    location: str
    description: str
    emergency: bool = True
    metadata: Mapping[str, Any] | None = None


class SonoranApi(abc.ABC):
    version: int

    def __init__(self, http: HttpCore) -> None:
        self.http = http
        # the last call list per request, with the bytes it came from: an unchanged reply (the
        # usual poll) is answered with the same CallList object, unparsed, and the feed skips it
        # whole; in a changed one, only the calls that changed are validated again (the memo)
        self._last_calls: dict[tuple[Any, ...], tuple[bytes, CallList, CallMemo]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.base_url!r})"

    def _call_list(self, key: tuple[Any, ...], server_id: int, reply: Reply) -> CallList:
        last = self._last_calls.get(key)
        if last is not None and last[0] == reply.body:
            return last[1]
        memo: CallMemo = last[2] if last is not None else {}
        try:
            calls = CallList.from_json(server_id, reply.body, memo)
        except ValueError as exc:
            raise BadReply(f"call list: {exc}", operation="get_calls", status=reply.status) from None
        if len(self._last_calls) >= LAST_CALL_LISTS:
            self._last_calls.clear()  # members paging through closed calls: many keys, rarely reused
        self._last_calls[key] = (reply.body, calls, memo)
        return calls

    async def _send(self, request: Request) -> Reply:
        return await self.http.send(request, self._error_for)

    @abc.abstractmethod
    async def _error_for(self, request: Request, reply: Reply) -> SonoranError: ...

    @abc.abstractmethod
    async def file_911(self, server_id: int, call: NewCall) -> int:
        """Files the call; returns its new call id."""

    @abc.abstractmethod
    async def remove_911(self, server_id: int, call_id: int) -> None: ...

    @abc.abstractmethod
    async def get_calls(
        self, server_id: int, *, closed_limit: int, closed_offset: int, call_type: CallType, spend: Spend = ANY_SPEND
    ) -> CallList: ...

    @abc.abstractmethod
    async def add_note(self, server_id: int, call_id: int, note: str, label: str) -> None: ...

    @abc.abstractmethod
    async def close_call(self, server_id: int, call_id: int) -> None: ...

    @abc.abstractmethod
    async def get_version(self) -> PlanInfo: ...

    async def attach_units(self, server_id: int, call_id: int, *, discord_id: int) -> list[int]:
        """Attaches the member's units on duty to the call; returns their identifier ids (v2)."""
        raise NeedsApiV2("attaching by Discord user needs API v2", operation="attach_unit")

    async def detach_units(self, server_id: int, *, discord_id: int) -> list[int]:
        """Detaches the member's units from whatever call they are on (v2)."""
        raise NeedsApiV2("detaching by Discord user needs API v2", operation="detach_unit")

    @abc.abstractmethod
    async def get_units(self, server_id: int, *, offset: int, spend: Spend = ANY_SPEND) -> UnitPage:
        """One page (UNITS_PAGE) of the units on duty, dispatchers left out, from `offset`."""

    async def set_unit_status(self, server_id: int, status: int, *, discord_id: int) -> int | None:
        """Sets the status of the member's units on duty (v2); how many units changed, when said."""
        raise NeedsApiV2("setting a unit status by Discord user needs API v2", operation="unit_status")

    async def set_unit_panic(self, server_id: int, panic: bool, *, discord_id: int) -> int | None:
        """Turns the panic of the member's units on duty on or off (v2); how many units changed, when said."""
        raise NeedsApiV2("setting a panic by Discord user needs API v2", operation="unit_panic")

    async def get_account(self, *, discord_id: int, spend: Spend = ANY_SPEND) -> Account:
        """The CAD account linked to this Discord user (v2)."""
        raise NeedsApiV2("reading accounts by Discord user needs API v2", operation="get_account")

    @abc.abstractmethod
    async def get_servers(self) -> list[Server]: ...

    @abc.abstractmethod
    async def lookup(self, query: LookupQuery, *, spend: Spend = ANY_SPEND) -> list[LookupRecord]:
        """The records matching a name or a plate (characters always among them)."""

    @staticmethod
    def _records(reply: Reply) -> list[LookupRecord]:
        try:
            return records_from_payload(reply.json())
        except ValueError as exc:
            raise BadReply(f"lookup: {exc}", operation="lookup", status=reply.status) from None


def servers_from_payload(payload: Any) -> list[Server]:
    if isinstance(payload, dict):
        payload = next((v for k, v in payload.items() if str(k).lower() == "servers"), None)
    if not isinstance(payload, list):
        raise ValueError("no server list")
    # a server whose id is no id is left out by itself
    return [Server.model_validate(i) for i in payload if isinstance(i, dict) and read_id(i.get("id")) is not None]


def stringify_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """v2 documents metaData values as strings; booleans become "true"/"false"."""
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif value is not None:
            out[str(key)] = str(value)
    return out
