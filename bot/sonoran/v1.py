"""v1, the envelope API of the original documents.

Every request is `POST {api_url}/{category}/{type lowercased}` with `{id, key, type, data: [...]}`.
Replies are plain text or JSON text (whatever the Content-Type); errors are HTTP 400 with text
such as `INVALID API KEY`, and HTTP 200 `Backend Service Reached` means the path was wrong.
"""

from __future__ import annotations

import re
from typing import Any

from . import numbers
from .api import NewCall, SonoranApi, servers_from_payload
from .errors import (
    BadCredentials,
    BadReply,
    NotFound,
    NotLinked,
    PlanTooLow,
    RequestRejected,
    SonoranError,
    UnknownServer,
    WrongApiUrl,
    mentions_plan,
)
from .models import UNITS_PAGE, CallList, CallType, Plan, PlanInfo, Server, UnitPage, units_from_payload
from .records import LookupQuery, LookupRecord
from .transport import ANY_SPEND, DETAIL_LIMIT, HttpCore, Reply, Request, Spend

CATEGORY = {
    "CALL_911": "emergency",
    "REMOVE_911": "emergency",
    "GET_CALLS": "emergency",
    "ADD_CALL_NOTE": "emergency",
    "CLOSE_CALL": "emergency",
    "GET_ACTIVE_UNITS": "emergency",
    "GET_VERSION": "general",
    "GET_SERVERS": "general",
    "LOOKUP": "general",
}
READS = frozenset({"GET_CALLS", "GET_ACTIVE_UNITS", "GET_VERSION", "GET_SERVERS", "LOOKUP"})
WRONG_PATH_REPLY = "backend service reached"
_FIRST_NUMBER = re.compile(r"\d+")
# v1 documents no text for an unknown call id; these are the forms the integrations look for.
_CALL_MISSING = re.compile(r"INVALID CALL ID|NO (SUCH )?CALL|CALL\b.*\b(NOT FOUND|DOES NOT EXIST)|NOT FOUND")


class V1Api(SonoranApi):
    version = 1

    def __init__(self, http: HttpCore, community_id: str, api_key: str) -> None:
        super().__init__(http)
        self._community_id = community_id
        self._api_key = api_key

    async def _call(
        self,
        request_type: str,
        data: list[dict[str, Any]],
        *,
        server_id: int | None = None,
        call_id: int | None = None,
        spend: Spend = ANY_SPEND,
    ) -> Reply:
        reply = await self._send(
            Request(
                operation=request_type.lower(),
                method="POST",
                path=f"/{CATEGORY[request_type]}/{request_type.lower()}",
                json={"id": self._community_id, "key": self._api_key, "type": request_type, "data": data},
                read=request_type in READS,
                server_id=server_id,
                call_id=call_id,
                spend=spend,
            )
        )
        if len(reply.body) < 200 and reply.text.strip().lower().removeprefix("sonoran cad: ") == WRONG_PATH_REPLY:
            raise WrongApiUrl(
                f"the CAD answered 'Backend Service Reached' to {request_type}: sonoran.api_url "
                "or sonoran.api_version is wrong",
                operation=reply.operation,
                status=reply.status,
            )
        return reply

    async def _error_for(self, request: Request, reply: Reply) -> SonoranError:
        text = reply.text.strip()
        upper = text.upper()
        kwargs: dict[str, Any] = {"operation": request.operation, "status": reply.status}
        if "INVALID API KEY" in upper or "INVALID COMMUNITY ID" in upper:
            return BadCredentials(text, **kwargs)
        if mentions_plan(text):
            return PlanTooLow(text, **kwargs)
        if "NOT LINKED" in upper:  # `API ID NOT LINKED TO AN ACCOUNT IN THIS COMMUNITY`
            return NotLinked(text, **kwargs)
        if "SERVER" in upper and ("INVALID" in upper or "NOT FOUND" in upper):
            return UnknownServer(request.server_id or 0, **kwargs)
        if reply.status == 404 or _CALL_MISSING.search(upper):
            return NotFound(text or "not found", call_id=request.call_id, **kwargs)
        # reply.text is redacted already; clip() keeps the order right should that ever change
        return RequestRejected(reply.redact.clip(text, DETAIL_LIMIT) or f"HTTP {reply.status}", **kwargs)

    async def file_911(self, server_id: int, call: NewCall) -> int:
        body: dict[str, Any] = {
            "serverId": server_id,
            "isEmergency": call.emergency,
            "caller": call.caller,
            "location": call.location,
            "description": call.description,
            "metaData": dict(call.metadata or {}),
        }
        reply = await self._call("CALL_911", [body], server_id=server_id)
        # `EMERGENCY CALL ADDED ID: 123` (the docs show `{123}`); the integrations take the digits.
        match = _FIRST_NUMBER.search(reply.text)
        call_id = numbers.read_id(match.group()) if match else None
        if call_id is None:  # no digits, or digits that are no call id (past 64 bits, not ASCII)
            raise BadReply(f"no call id in {reply.text[:80]!r}", operation="call_911", status=reply.status)
        return call_id

    async def remove_911(self, server_id: int, call_id: int) -> None:
        await self._call(
            "REMOVE_911", [{"serverId": server_id, "callId": call_id}], server_id=server_id, call_id=call_id
        )

    async def get_calls(
        self, server_id: int, *, closed_limit: int, closed_offset: int, call_type: CallType, spend: Spend = ANY_SPEND
    ) -> CallList:
        data = {
            "serverId": server_id,
            "closedLimit": closed_limit,
            "closedOffset": closed_offset,
            "type": int(call_type),
        }
        reply = await self._call("GET_CALLS", [data], server_id=server_id, spend=spend)
        return self._call_list((server_id, closed_limit, closed_offset, int(call_type)), server_id, reply)

    async def add_note(self, server_id: int, call_id: int, note: str, label: str) -> None:
        body = {"serverId": server_id, "callId": call_id, "note": note, "label": label}
        await self._call("ADD_CALL_NOTE", [body], server_id=server_id, call_id=call_id)

    async def close_call(self, server_id: int, call_id: int) -> None:
        await self._call(
            "CLOSE_CALL", [{"serverId": server_id, "callId": call_id}], server_id=server_id, call_id=call_id
        )

    async def get_units(self, server_id: int, *, offset: int, spend: Spend = ANY_SPEND) -> UnitPage:
        # `onlyUnits` as documented (the old FiveM code sent `unitsOnly`, which did nothing)
        data = {
            "serverId": server_id,
            "onlyUnits": True,
            "includeOffline": False,
            "limit": UNITS_PAGE,
            "offset": offset,
        }
        reply = await self._call("GET_ACTIVE_UNITS", [data], server_id=server_id, spend=spend)
        try:
            return units_from_payload(server_id, reply.json())
        except ValueError as exc:
            raise BadReply(f"unit list: {exc}", operation="get_active_units", status=reply.status) from None

    async def get_version(self) -> PlanInfo:
        reply = await self._call("GET_VERSION", [])
        # Plain text that starts with the plan number, e.g. `3` or `3 - PLUS`.
        match = re.match(r"\s*(\d+)", reply.text)
        if not match:
            raise BadReply(f"no plan number in {reply.text[:80]!r}", operation="get_version")
        level = int(match.group(1))
        return PlanInfo(level=level, name=Plan.label(level).upper())

    async def lookup(self, query: LookupQuery, *, spend: Spend = ANY_SPEND) -> list[LookupRecord]:
        # first, last, mi and plate all present (blanks allowed), as v1 wants them
        reply = await self._call("LOOKUP", [query.body()], spend=spend)
        return self._records(reply)

    async def get_servers(self) -> list[Server]:
        reply = await self._call("GET_SERVERS", [])
        try:
            return servers_from_payload(reply.json())
        except ValueError as exc:
            raise BadReply(f"server list: {exc}", operation="get_servers") from None
