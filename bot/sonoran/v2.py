"""v2, the REST API the official plugins use since April 2026.

`/v2/...` paths with the server id in the path, `Authorization: Bearer <key>`, JSON replies,
`application/problem+json` errors carrying a `traceId`, PascalCase wrappers in the call list.
"""

from __future__ import annotations

import re
import time
from typing import Any

from . import numbers
from .api import NewCall, SonoranApi, servers_from_payload, stringify_metadata
from .errors import (
    BadCredentials,
    BadReply,
    NotFound,
    NotLinked,
    NoUnitOnDuty,
    PlanTooLow,
    RequestRejected,
    SonoranError,
    UnknownServer,
    mentions_plan,
)
from .models import (
    UNITS_PAGE,
    Account,
    CallList,
    CallType,
    EmergencyCall,
    Plan,
    PlanInfo,
    Server,
    UnitPage,
    units_from_payload,
)
from .records import LookupQuery, LookupRecord
from .transport import ANY_SPEND, DETAIL_LIMIT, HttpCore, Reply, Request, Spend, trace_id_of

MEMBER_OPERATIONS = frozenset({"attach_unit", "detach_unit", "get_account", "unit_status", "unit_panic"})
UNIT_WRITES = frozenset({"unit_status", "unit_panic"})
SERVER_LIST_TTL = 600.0  # how long a fetched server list answers "is this 404 the server?"


class V2Api(SonoranApi):
    version = 2

    def __init__(self, http: HttpCore, api_key: str) -> None:
        super().__init__(http)
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._servers: tuple[float, frozenset[int]] | None = None

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        server_id: int | None = None,
        call_id: int | None = None,
        spend: Spend = ANY_SPEND,
        json_reply: bool = True,
        read: bool | None = None,
    ) -> Reply:
        """One request; its reply, checked to be JSON unless `json_reply=False` (the caller parses it)."""
        reply = await self._send(
            Request(
                operation=operation,
                method=method,
                path=path,
                json=body,
                params=params,
                headers=self._headers,
                read=method == "GET" if read is None else read,  # a lookup is a read, though POSTed
                server_id=server_id,
                call_id=call_id,
                spend=spend,
            )
        )
        if json_reply:
            reply.json()  # raises BadReply: v2 answers JSON, anything else is not understood
        return reply

    async def _error_for(self, request: Request, reply: Reply) -> SonoranError:
        problem = _problem(reply)
        detail = str(problem.get("detail") or problem.get("title") or problem.get("message") or reply.text)
        # the CAD's words may repeat what it was sent, the key included: they reach members and the audit log
        detail = self.http.redact.clip(detail.strip(), DETAIL_LIMIT) or f"HTTP {reply.status}"
        kwargs: dict[str, Any] = {
            "operation": request.operation,
            "status": reply.status,
            "trace_id": self.http.redact.clip(trace, 100) if (trace := trace_id_of(reply)) else None,
        }
        if reply.status == 401:
            return BadCredentials(detail, **kwargs)
        # a plan error is a plan error on every operation, member operations included
        if _is_plan_error(reply.status, problem, detail):
            return PlanTooLow(detail, **kwargs)
        member_error = _member_error(request, reply, detail, kwargs)
        if member_error is not None:
            return member_error
        if reply.status == 404 and request.operation in UNIT_WRITES and request.server_id is not None:
            # "Template or unit target not found": a 404 that is not about the server says so
            if not await self._server_exists(request.server_id):
                return UnknownServer(request.server_id, **kwargs)
            return RequestRejected(detail, **kwargs)
        if reply.status == 404 and request.server_id is not None:
            # The same 404 means "no such server" and "no such call": ask the server list.
            if request.call_id is None or not await self._server_exists(request.server_id):
                return UnknownServer(request.server_id, **kwargs)
            return NotFound(detail, call_id=request.call_id, **kwargs)
        if reply.status == 404:
            return NotFound(detail, **kwargs)
        return RequestRejected(detail, **kwargs)

    async def _server_exists(self, server_id: int) -> bool:
        now = time.monotonic()
        if self._servers is None or now - self._servers[0] > SERVER_LIST_TTL:
            try:
                ids = frozenset(server.id for server in await self.get_servers())
            except SonoranError:
                return True  # cannot tell; "call not found" is the likelier reading
            self._servers = (now, ids)
        return server_id in self._servers[1]

    async def file_911(self, server_id: int, call: NewCall) -> int:
        body = {
            "isEmergency": call.emergency,
            "caller": call.caller,
            "location": call.location,
            "description": call.description,
            "metaData": stringify_metadata(call.metadata),
        }
        reply = await self._call(
            "call_911", "POST", f"/v2/emergency/servers/{server_id}/calls/911", body=body, server_id=server_id
        )
        payload = reply.json()
        try:
            return EmergencyCall.model_validate(payload).call_id
        except ValueError:
            raise BadReply("no callId in the created call", operation="call_911") from None

    async def remove_911(self, server_id: int, call_id: int) -> None:
        await self._call(
            "remove_911",
            "DELETE",
            f"/v2/emergency/servers/{server_id}/calls/911/{call_id}",
            server_id=server_id,
            call_id=call_id,
        )

    async def get_calls(
        self, server_id: int, *, closed_limit: int, closed_offset: int, call_type: CallType, spend: Spend = ANY_SPEND
    ) -> CallList:
        # The OpenAPI block marks all three as required, so they are always sent.
        params = {
            "closedLimit": str(closed_limit),
            "closedOffset": str(closed_offset),
            "type": str(int(call_type)),
        }
        reply = await self._call(
            "get_calls",
            "GET",
            f"/v2/emergency/servers/{server_id}/calls",
            params=params,
            server_id=server_id,
            spend=spend,
            json_reply=False,
        )
        return self._call_list((server_id, closed_limit, closed_offset, int(call_type)), server_id, reply)

    async def add_note(self, server_id: int, call_id: int, note: str, label: str) -> None:
        await self._call(
            "add_call_note",
            "POST",
            f"/v2/emergency/servers/{server_id}/dispatch-calls/{call_id}/notes",
            body={"note": note, "noteType": "text", "label": label},
            server_id=server_id,
            call_id=call_id,
        )

    async def close_call(self, server_id: int, call_id: int) -> None:
        await self._call(
            "close_call",
            "POST",
            f"/v2/emergency/servers/{server_id}/dispatch-calls/close",
            body={"callIds": [call_id]},
            server_id=server_id,
            call_id=call_id,
        )

    async def attach_units(self, server_id: int, call_id: int, *, discord_id: int) -> list[int]:
        path = f"/v2/emergency/servers/{server_id}/dispatch-calls/{call_id}/attachments"
        return await self._attachments("attach_unit", "POST", path, server_id, discord_id, call_id)

    async def detach_units(self, server_id: int, *, discord_id: int) -> list[int]:
        path = f"/v2/emergency/servers/{server_id}/dispatch-calls/attachments"
        return await self._attachments("detach_unit", "DELETE", path, server_id, discord_id)

    async def _attachments(
        self, operation: str, method: str, path: str, server_id: int, discord_id: int, call_id: int | None = None
    ) -> list[int]:
        """The member is targeted by Discord id; the answer names the unit identifiers moved."""
        body = {"discord": str(discord_id)}
        reply = await self._call(operation, method, path, body=body, server_id=server_id, call_id=call_id)
        return _ident_ids(reply.json())

    async def get_units(self, server_id: int, *, offset: int, spend: Spend = ANY_SPEND) -> UnitPage:
        params = {"includeOffline": "false", "onlyUnits": "true", "limit": str(UNITS_PAGE), "offset": str(offset)}
        path = f"/v2/emergency/servers/{server_id}/units"
        reply = await self._call("get_active_units", "GET", path, params=params, server_id=server_id, spend=spend)
        try:
            return units_from_payload(server_id, reply.json())
        except ValueError as exc:
            raise BadReply(f"unit list: {exc}", operation="get_active_units", status=reply.status) from None

    async def set_unit_status(self, server_id: int, status: int, *, discord_id: int) -> int | None:
        path = f"/v2/emergency/servers/{server_id}/units/status"
        body = {"discord": str(discord_id), "status": status}
        return _updated(await self._call("unit_status", "PATCH", path, body=body, server_id=server_id))

    async def set_unit_panic(self, server_id: int, panic: bool, *, discord_id: int) -> int | None:
        path = f"/v2/emergency/servers/{server_id}/units/panic"
        body = {"discord": str(discord_id), "isPanic": panic}
        return _updated(await self._call("unit_panic", "PATCH", path, body=body, server_id=server_id))

    async def get_account(self, *, discord_id: int, spend: Spend = ANY_SPEND) -> Account:
        reply = await self._call(
            "get_account", "GET", "/v2/general/accounts/account", params={"discord": str(discord_id)}, spend=spend
        )
        try:
            return Account.model_validate(reply.json())
        except ValueError:
            raise BadReply("the account is not an object", operation="get_account") from None

    async def lookup(self, query: LookupQuery, *, spend: Spend = ANY_SPEND) -> list[LookupRecord]:
        reply = await self._call("lookup", "POST", "/v2/general/lookups", body=query.body(), spend=spend, read=True)
        return self._records(reply)

    async def get_version(self) -> PlanInfo:
        payload = (await self._call("get_version", "GET", "/v2/general/version")).json()
        if not isinstance(payload, dict) or "version" not in payload:
            raise BadReply("no version in the reply", operation="get_version")
        level = numbers.read_optional_code(payload["version"])
        if level is None:
            raise BadReply("version is not a number", operation="get_version")
        # The docs' own example pairs 2 with "PLUS"; the name is what we believe when present.
        name = str(payload.get("name") or Plan.label(level)).upper()
        return PlanInfo(level=level, name=name)

    async def get_servers(self) -> list[Server]:
        payload = (await self._call("get_servers", "GET", "/v2/general/servers")).json()
        try:
            return servers_from_payload(payload)
        except ValueError as exc:
            raise BadReply(f"server list: {exc}", operation="get_servers") from None


def _is_plan_error(status: int, problem: dict[str, Any], detail: str) -> bool:
    """402, a problem `type` of Sonoran's plan family (`err-ss-101`), or a 4xx naming a plan
    (`VERSION PRO REQUIRED`, `... IS NOT ENABLED FOR THIS COMMUNITY`)."""
    kind = str(problem.get("type") or "").lower()
    return status == 402 or "err-ss-" in kind or (400 <= status < 500 and mentions_plan(detail))


_NOT_LINKED = re.compile(r"\bnot\s+linked\b|\bno\s+(?:linked\s+)?account\b|\baccount\s+(?:was\s+)?not\s+found\b", re.I)
_NO_UNIT = re.compile(r"\b(?:units?|identifiers?|idents?)\b|\bon\s+duty\b", re.I)
_ACCOUNT = re.compile(r"\b(?:accounts?|linked|link)\b", re.I)


def _member_error(request: Request, reply: Reply, detail: str, kwargs: dict[str, Any]) -> SonoranError | None:
    """Errors about the member targeted by Discord id, by status and structure first: a 404 from the
    account lookup is "not linked" whatever its words. Otherwise Sonoran's texts decide, read as
    whole words ("community" holds "unit", "identifier" holds "ident"): "not linked" first, then
    units, then an account named at all. The texts are not documented (see the README)."""
    if request.operation not in MEMBER_OPERATIONS or reply.status not in (400, 404):
        return None
    if (request.operation == "get_account" and reply.status == 404) or _NOT_LINKED.search(detail):
        return NotLinked(detail, **kwargs)
    if _NO_UNIT.search(detail):
        return NoUnitOnDuty(detail, **kwargs)
    if _ACCOUNT.search(detail):
        return NotLinked(detail, **kwargs)
    return None


def _updated(reply: Reply) -> int | None:
    """`updated` of a status or panic reply (`{"updated": 1, ...}`): how many units changed; None
    when the CAD did not say."""
    payload = reply.json()
    value = payload.get("updated") if isinstance(payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _ident_ids(payload: Any) -> list[int]:
    values = payload.get("identIds") if isinstance(payload, dict) else None
    return numbers.ids(values) if isinstance(values, list) else []


def _problem(reply: Reply) -> dict[str, Any]:
    try:
        body = reply.json()
    except BadReply:
        return {}
    return body if isinstance(body, dict) else {}
