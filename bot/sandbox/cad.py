"""The sandbox CAD: a Sonoran CAD on 127.0.0.1 that speaks v1 and v2 as Sonoran documents them
(../shared/sonoran-api.md), for `python -m bot demo` and for the tests, which use this very code.

It keeps calls per CAD server, records every request it receives, enforces the plan each operation
needs and Sonoran's rate limits (on by default, `limits`), refuses what Sonoran refuses (bad
statuses, targets, `limit`s), and can be told to misbehave (`fail_next`): any status and body, a
429 with Retry-After, a slow answer, a malformed body.

One server may serve many communities (hosted mode's tests and `bench.communities`): the
`FakeCad` you start is the first; `add_community(community_id, api_key)` registers another and
returns its own `FakeCad` (never started itself), with its own calls, units, accounts, requests,
faults and rate-limit budget, as Sonoran counts per key. A request goes to the community that its
v1 body's `id` or its v2 bearer key names; one naming no registered community is answered by the
first, which refuses it as Sonoran does (`INVALID COMMUNITY ID`, `INVALID API KEY`, or v2's 401).

Where Sonoran documents a status code but not its words, the words are the sandbox's own; they are
all in `Assumed`, named as assumptions.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from .records import lookup_problem, matches, sample_records

API_KEY = "0f1e2d3c-aaaa-bbbb-cccc-5ec2e7ap1key"
COMMUNITY_ID = "testcad"

V1_PLAN_NEEDED = {
    "get_version": 0,
    "call_911": 2,
    "remove_911": 2,
    "get_servers": 2,
    "get_calls": 3,
    "add_call_note": 3,
    "close_call": 3,
    "get_account": 3,  # GET_ACCOUNT needs Plus
    "get_active_units": 3,
    "unit_status": 2,
    "unit_panic": 2,
    "lookup": 3,  # LOOKUP needs Plus
}
UNITS_LIMIT = 100  # Sonoran's default and maximum `limit` for the units list
UNIT_STATUSES = frozenset(range(5))  # UNIT_STATUS 0-4: what PATCH .../units/status accepts out of the box
# Requests a minute per API key and operation: Sonoran's v2 table (sonoran-api.md 3.3). v1 publishes
# none; the sandbox applies the same numbers to it (an assumption).
SONORAN_LIMITS = {
    "get_calls": 5,
    "get_active_units": 3,
    "call_911": 10,
    "remove_911": 10,
    "add_call_note": 60,
    "close_call": 20,
    "attach_unit": 10,
    "detach_unit": 10,
    "get_account": 10,
    "get_version": 10,
    "get_servers": 10,
    "unit_status": 30,
    "unit_panic": 20,
}
# the ways a v2 request may name its member or units: exactly one is allowed (sonoran-api.md 3.4)
TARGETS = ("communityUserId", "communityUserIds", "roblox", "discord", "accountUuid", "identIds", "apiId", "apiIds")


class Assumed:
    """What the sandbox answers where Sonoran documents the status code but not the words (or not
    the behaviour). Assumptions, all in one place: a test that depends on one says so by using it.
    (`not_linked()` below is one more: the words for a Discord id with no account.) The v1 texts
    elsewhere in this file are Sonoran's documented ones."""

    NO_UNITS = "No active units found for the target."  # 400 on a target with no unit on duty
    SERVER_NOT_FOUND = "Server not found."  # 404 (documented: "serverId not configured")
    NO_ROUTE = "No such route."
    PLAN = "Your plan does not include this endpoint."  # 402; the type stays the status page's
    ONE_TARGET = "Exactly one target is allowed: " + ", ".join(TARGETS) + "."
    DISCORD_TEXT = "discord must be a string (a Discord user ID)."
    BAD_STATUS = "status must be one of the community's unit statuses."
    BAD_LIMIT = "limit must be an integer from 1 to 100."
    BAD_OFFSET = "offset must be an integer of 0 or more."
    BAD_FLAG = "{name} must be true or false."
    BAD_FLAG_PANIC = "isPanic must be a boolean."
    NO_KEY = "Invalid or missing API key."  # 401 (documented: missing, not Bearer, or invalid)
    NO_EMERGENCY_CALL = "Emergency call {call_id} not found."  # 404
    NO_DISPATCH_CALL = "Dispatch call {call_id} not found."  # 404
    V1_BAD_VALUE = "INVALID REQUEST DATA"  # v1's 400 text for a value it refuses
    OFFLINE_STATUS = 100  # a unit logged off shows as OFFLINE (v2's UNIT_STATUS 100) with includeOffline


class Hub(Protocol):
    """A SignalR hub served beside the API (the tests' `FakeHub`)."""

    async def handle(self, request: web.Request) -> web.StreamResponse: ...


def not_linked(discord_id: str) -> str:
    """An assumption (see `Assumed`): how the CAD words a Discord id with no account (the words
    "community" and "identifier" hold "unit" and "ident": a reader that looks for substrings takes
    it for "no unit on duty")."""
    return f"Discord ID {discord_id} is not linked to an account in this community (no identifier found)."


PLAN_NAMES = {0: "FREE", 1: "STARTER", 2: "STANDARD", 3: "PLUS", 4: "PRO", 6: "SONORAN ONE"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    operation: str
    at: float = 0.0  # the CAD's clock when it arrived
    rate_limited: bool = False  # answered 429: past its key's budget for the operation


@dataclass
class Fault:
    operation: str | None  # None: the next request of any operation
    status: int = 500
    body: str = "Internal Server Error"
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (longer than the client timeout = timeout)
    passthrough: bool = False  # after the delay, answer normally (a slow but successful CAD)


@dataclass
class ServerCalls:
    emergency: dict[int, dict[str, Any]] = field(default_factory=dict)
    active: dict[int, dict[str, Any]] = field(default_factory=dict)
    closed: list[dict[str, Any]] = field(default_factory=list)
    units: dict[int, dict[str, Any]] = field(default_factory=dict)  # on duty, by identifier id
    offline: dict[int, dict[str, Any]] = field(default_factory=dict)  # logged off (`includeOffline`)


class FakeCad:
    def __init__(
        self,
        *,
        plan: int = 3,
        servers: tuple[int, ...] = (1,),
        api_key: str = API_KEY,
        limits: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        community_id: str = COMMUNITY_ID,
    ) -> None:
        """`limits`: requests a minute per operation, enforced with 429s over a sliding minute of
        `clock`; Sonoran's own numbers by default (`{}`: none, for a test that says so)."""
        self.api_key = api_key
        self.community_id = community_id
        self.plan = plan
        self.servers: dict[int, ServerCalls] = {s: ServerCalls() for s in servers}
        self.next_id = 1000
        self.requests: list[Recorded] = []
        self.faults: collections.deque[Fault] = collections.deque()
        self.limits: dict[str, int] = dict(SONORAN_LIMITS if limits is None else limits)
        self.clock = clock
        self._window: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.on_request: Callable[[Recorded], None] | None = None  # told of each request as it arrives
        self.hub: Hub | None = None  # Sonoran's SignalR hub, at /apiWsHub beside the API
        self.accounts: dict[str, dict[str, Any]] = {}  # Discord user id -> linked CAD account (v2)
        self.units_wrapped = False  # v2 units list as `{"units": [...]}` (the FiveM code copes with both)
        self.records: list[dict[str, Any]] = sample_records()  # what lookups search (bot/sandbox/records.py)
        self.unit_statuses = set(UNIT_STATUSES)  # a community may configure more
        # the other communities this server serves (`add_community`): by community ID and by key
        self.communities: dict[str, FakeCad] = {}
        self._by_key: dict[str, FakeCad] = {}

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # a CAD told to hang answers nobody at close: do not wait a minute for it
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        for other in self.communities.values():
            other.url = self.url
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def add_community(
        self,
        community_id: str,
        api_key: str,
        *,
        plan: int = 3,
        servers: tuple[int, ...] = (1,),
        limits: dict[str, int] | None = None,
    ) -> FakeCad:
        """Another community served at this server's URL, with its own ID and API key, its own calls,
        units and accounts, and its own budget (`limits`: this server's by default, counted for
        this key alone). Returns its handle: script it as this one (`add_911`, `fail_next`,
        `requests`, ...); it is never started itself."""
        if community_id == self.community_id or community_id in self.communities:
            raise ValueError(f"community {community_id!r} is already served here")
        if api_key.upper() == self.api_key.upper() or api_key.upper() in self._by_key:
            raise ValueError("that API key is already another community's")
        other = FakeCad(
            plan=plan,
            servers=servers,
            api_key=api_key,
            limits=dict(self.limits) if limits is None else limits,
            clock=self.clock,
            community_id=community_id,
        )
        other.url = self.url
        self.communities[community_id] = other
        self._by_key[api_key.upper()] = other
        return other

    # --- scripting -------------------------------------------------------------------------------
    def fail_next(self, operation: str | None = None, **kwargs: Any) -> None:
        self.faults.append(Fault(operation, **kwargs))

    def add_911(
        self,
        caller: str = "John Doe",
        location: str = "Mission Row",
        description: str = "Shots fired",
        *,
        emergency: bool = True,
        server: int = 1,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        call_id = self._new_id()
        self.servers[server].emergency[call_id] = {
            "callId": call_id,
            "isEmergency": emergency,
            "caller": caller,
            "location": location,
            "description": description,
            "metaData": metadata or {},
        }
        return call_id

    def add_account(
        self,
        discord_id: str,
        *,
        dispatch: bool = False,
        admin: bool = False,
        units: tuple[int, ...] = (11,),
        status: int = 1,
    ) -> str:
        """A CAD account linked to Discord user `discord_id`, with unit identifiers on duty (`units`);
        `status` is ACCOUNT_STATUS (1 VALIDATED, 3 REMOVED, 4 BANNED)."""
        uuid = f"acc-{discord_id[-6:]}"
        self.accounts[discord_id] = {
            "uuid": uuid,
            "username": f"member{discord_id[-4:]}",
            "communityUserId": "",
            "status": status,
            "permissions": {"dispatch": dispatch, "admin": admin, "police": True},
            "units": list(units),
        }
        return uuid

    def add_unit(
        self,
        ident: int,
        unit_num: str,
        name: str = "",
        department: str = "LSPD",
        *,
        status: int = 2,
        server: int = 1,
        panic: bool = False,
        location: str = "",
        discord: str | None = None,
    ) -> dict[str, Any]:
        """A unit identifier going on duty (as the CAD shows it in the units list). With `discord`,
        the identifier is that linked account's (so /status and /panic find it)."""
        unit = {
            "id": ident,
            "accId": self.accounts[discord]["uuid"] if discord in self.accounts else f"acc-{ident}",
            "status": status,
            "isPanic": panic,
            "location": location,
            "aop": "Los Santos",
            "isDispatch": False,
            "data": {
                "unitNum": unit_num,
                "name": name,
                "district": "",
                "department": department,
                "subdivision": "",
                "rank": "",
                "group": "",
                "page": 0,
                "apiIds": [],
            },
        }
        self.servers[server].units[ident] = unit
        self.servers[server].offline.pop(ident, None)
        if discord is not None and discord in self.accounts:
            self.accounts[discord]["units"] = [*self.accounts[discord]["units"], ident]
        return unit

    def set_panic(self, ident: int, panic: bool = True, *, server: int = 1) -> None:
        """The game server sets a panic through the API: the CAD sends no event for it."""
        self.servers[server].units[ident]["isPanic"] = panic

    def log_off(self, ident: int, *, server: int = 1) -> None:
        unit = self.servers[server].units.pop(ident)
        self.servers[server].offline[ident] = {**unit, "status": Assumed.OFFLINE_STATUS, "isPanic": False}

    def add_dispatch(self, title: str = "Armed robbery", *, server: int = 1, **fields: Any) -> int:
        call_id = self._new_id()
        call: dict[str, Any] = {
            "callId": call_id,
            "origin": 0,
            "status": 1,
            "priority": 2,
            "block": "",
            "address": "Mission Row",
            "postal": "101",
            "title": title,
            "code": "10-31",
            "description": "",
            "notes": [],
            "idents": [],
            "metaData": {},
        }
        call.update(fields)
        self.servers[server].active[call_id] = call
        return call_id

    def answer_911(self, call_id: int, *, server: int = 1, title: str = "From 911") -> int:
        """A dispatcher turns the 911 call into a dispatch call (it leaves the emergency list)."""
        call = self.servers[server].emergency.pop(call_id)
        return self.add_dispatch(title, server=server, address=call["location"], metaData={"origin911": str(call_id)})

    def close_dispatch(self, call_id: int, *, server: int = 1) -> None:
        call = self.servers[server].active.pop(call_id)
        call["status"] = 2
        self.servers[server].closed.insert(0, call)

    def reset_window(self) -> None:
        self._window.clear()

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests]

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # --- dispatch --------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.hub is not None and request.path.startswith("/apiWsHub"):
            return await self.hub.handle(request)
        raw = await request.text()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        return await self.community_for(request.path, request.headers.get("Authorization", ""), body).answer(
            request, body
        )

    def community_for(self, path: str, authorization: str, body: Any) -> FakeCad:
        """The community a request names: v2 by its bearer key, v1 by its body's `id`; this one
        when it names none of the others (it then refuses it, unless it is this one's)."""
        if not self.communities:
            return self
        if path.startswith("/v2/"):
            key = authorization[7:].upper() if authorization.startswith("Bearer ") else ""
            return self._by_key.get(key, self)
        named = body.get("id") if isinstance(body, dict) else None
        return self.communities.get(named, self) if isinstance(named, str) else self

    async def answer(self, request: web.Request, body: Any) -> web.StreamResponse:
        """A request to this community, its body parsed: recorded, then answered (or refused)."""
        path = request.path
        v2 = path.startswith("/v2/")
        operation = _v2_operation(request.method, path) if v2 else path.rsplit("/", 1)[-1]
        recorded = Recorded(
            request.method, path, dict(request.query), body, dict(request.headers), operation, self.clock()
        )
        self.requests.append(recorded)
        if self.on_request is not None:
            self.on_request(recorded)
        fault = self._take_fault(operation)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if not fault.passthrough:
                return web.Response(
                    status=fault.status, text=fault.body, content_type=fault.content_type, headers=fault.headers
                )
        wait = self._rate_limited(operation)
        if wait is not None:  # the documented gateway body, not problem+json
            recorded.rate_limited = True
            return web.json_response(
                {"message": "API rate limit exceeded", "request_id": "abc123"},
                status=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
        if v2:
            return await self._v2(request, path, body, operation)
        return self._v1(path, body, operation)

    def _rate_limited(self, operation: str) -> float | None:
        """None when the request fits its operation's minute (and is counted), else the wait."""
        limit = self.limits.get(operation)
        if limit is None:
            return None
        if limit <= 0:
            return 60.0
        now, stamps = self.clock(), self._window[operation]
        while stamps and now - stamps[0] >= 60.0:
            stamps.popleft()
        if len(stamps) >= limit:
            return stamps[0] + 60.0 - now
        stamps.append(now)
        return None

    def _take_fault(self, operation: str) -> Fault | None:
        for fault in list(self.faults):
            if fault.operation in (None, operation):
                self.faults.remove(fault)
                return fault
        return None

    # --- v1 --------------------------------------------------------------------------------------
    def _v1(self, path: str, body: Any, operation: str) -> web.Response:
        def text(message: str, status: int = 200) -> web.Response:
            return web.Response(status=status, text=message)

        category = path.strip("/").split("/")[0]
        if operation not in V1_PLAN_NEEDED or category not in ("emergency", "general"):
            return text("Backend Service Reached")
        if not isinstance(body, dict) or body.get("type", "").lower() != operation:
            return text("INVALID REQUEST TYPE", 400)
        if body.get("id") != self.community_id:
            return text("INVALID COMMUNITY ID", 400)
        if str(body.get("key", "")).upper() != self.api_key.upper():
            return text("INVALID API KEY", 400)
        if self.plan < 2:
            return text("API IS NOT ENABLED FOR THIS COMMUNITY", 400)
        needed = V1_PLAN_NEEDED[operation]
        if self.plan < needed:
            return text(f"VERSION {PLAN_NAMES[needed]} REQUIRED", 400)
        data = body.get("data") or [{}]
        item = data[0] if data else {}
        if operation == "get_version":
            return text(f"{self.plan}")
        if operation == "get_servers":
            return text(json.dumps({"servers": self._server_list()}))
        if operation == "lookup":
            problem = lookup_problem(item, all_keys=True)
            if problem is not None:
                return text(problem, 400)
            return text(json.dumps({"records": matches(self.records, item)}))
        server = self.servers.get(int(item.get("serverId", 1)))
        if server is None:
            return text("INVALID SERVER ID", 400)
        if operation == "call_911":
            call_id = self._file(server, item)
            return text(f"EMERGENCY CALL ADDED ID: {call_id}")
        if operation == "get_calls":
            # JSON in the body, but labelled text/plain, as the real v1 does
            return text(json.dumps(self._call_list(server, item, wrapper_case="camel")))
        if operation == "get_active_units":
            page = _unit_page(server, item, v2=False)
            return text(Assumed.V1_BAD_VALUE, 400) if isinstance(page, str) else text(json.dumps(page))
        call_id = int(item.get("callId", -1))
        if operation == "remove_911":
            if server.emergency.pop(call_id, None) is None:
                return text("INVALID CALL ID", 400)
            return text("API ID(s) set!")  # sic: the documented success text
        if operation == "add_call_note":
            if call_id not in server.active:
                return text("INVALID CALL ID", 400)
            server.active[call_id]["notes"].append(_note(item))
            return text(f"NOTE '{item.get('note')}' added to call #{call_id}")
        if operation == "close_call":
            if call_id not in server.active:
                return text("INVALID CALL ID", 400)
            self._close(server, call_id)
            return text("UNITS ATTACHED")  # sic
        return text("Backend Service Reached")

    # --- v2 --------------------------------------------------------------------------------------
    async def _v2(self, request: web.Request, path: str, body: Any, operation: str) -> web.Response:
        def problem(status: int, title: str, detail: str, type_: str | None = None) -> web.Response:
            return web.json_response(
                {
                    "type": type_ or f"https://httpstatuses.com/{status}",
                    "title": title,
                    "status": status,
                    "detail": detail,
                    "instance": path,
                    "traceId": f"trace-{len(self.requests)}",
                },
                status=status,
                content_type="application/problem+json",
            )

        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:].upper() != self.api_key.upper():
            return problem(401, "Unauthorized", Assumed.NO_KEY)
        if operation == "unknown":
            return problem(404, "Not Found", Assumed.NO_ROUTE)
        if self.plan < 2 or self.plan < V1_PLAN_NEEDED.get(operation, 0):
            return problem(402, "Payment Required", Assumed.PLAN)
        if operation == "get_version":
            return web.json_response({"version": self.plan, "name": PLAN_NAMES.get(self.plan, "UNKNOWN")})
        if operation == "get_servers":
            return web.json_response({"servers": self._server_list()})
        if operation == "get_account":
            discord_id = request.query.get("discord", "")
            account = self.accounts.get(discord_id)
            if account is None:  # Sonoran does not document this text: an assumption (README)
                return problem(404, "Not Found", not_linked(discord_id))
            return web.json_response({k: v for k, v in account.items() if k != "units"})
        if operation == "lookup":
            if (refusal := lookup_problem(body, all_keys=False)) is not None:
                return problem(400, "Bad Request", refusal)
            return web.json_response(matches(self.records, body))
        match = re.match(r"/v2/emergency/servers/(\d+)/", path)
        server = self.servers.get(int(match.group(1))) if match else None
        if server is None:
            return problem(404, "Not Found", Assumed.SERVER_NOT_FOUND)
        if operation == "get_active_units":
            page = _unit_page(server, dict(request.query), v2=True)
            if isinstance(page, str):
                return problem(400, "Bad Request", page)
            return web.json_response({"units": page} if self.units_wrapped else page)
        if operation in ("unit_status", "unit_panic"):
            body = body if isinstance(body, dict) else {}
            if sum(1 for key in TARGETS if key in body) != 1:
                return problem(400, "Bad Request", Assumed.ONE_TARGET)
            if "discord" in body and not isinstance(body["discord"], str):
                return problem(400, "Bad Request", Assumed.DISCORD_TEXT)
            if operation == "unit_status":
                status = body.get("status")
                if not isinstance(status, int) or isinstance(status, bool) or status not in self.unit_statuses:
                    return problem(400, "Bad Request", Assumed.BAD_STATUS)
            elif not isinstance(body.get("isPanic"), bool):
                return problem(400, "Bad Request", Assumed.BAD_FLAG_PANIC)
            discord_id = str(body.get("discord", ""))
            account = self.accounts.get(discord_id)
            if account is None:
                return problem(404, "Not Found", not_linked(discord_id))
            mine = [server.units[i] for i in account["units"] if i in server.units]
            if not mine:
                return problem(400, "Bad Request", Assumed.NO_UNITS)
            if operation == "unit_status":
                for unit in mine:
                    unit["status"] = status
                names = ["UNAVAILABLE", "BUSY", "AVAILABLE", "ENROUTE", "ON_SCENE"]
                return web.json_response({"updated": len(mine), "status": names[status] if status < 5 else status})
            panic = body["isPanic"]
            for unit in mine:
                unit["isPanic"] = panic
            return web.json_response({"updated": len(mine), "isPanic": panic})
        if operation == "get_calls":
            query = {
                "closedLimit": request.query.get("closedLimit", "10"),
                "closedOffset": request.query.get("closedOffset", "0"),
            }
            return web.json_response(self._call_list(server, query, wrapper_case="pascal"))
        if operation == "call_911":
            call_id = self._file(server, body or {})
            return web.json_response(server.emergency[call_id])
        if operation == "remove_911":
            call_id = int(path.rsplit("/", 1)[-1])
            if server.emergency.pop(call_id, None) is None:
                return problem(404, "Not Found", Assumed.NO_EMERGENCY_CALL.format(call_id=call_id))
            return web.json_response({"callId": call_id, "serverId": int(match.group(1))})  # type: ignore[union-attr]
        if operation == "add_call_note":
            call_id = int(path.split("/")[-2])
            if call_id not in server.active:
                return problem(404, "Not Found", Assumed.NO_DISPATCH_CALL.format(call_id=call_id))
            note = _note(body or {})
            server.active[call_id]["notes"].append(note)
            return web.json_response({"callId": call_id, "note": note})
        if operation in ("attach_unit", "detach_unit"):
            discord_id = str((body or {}).get("discord", ""))
            account = self.accounts.get(discord_id)
            if account is None:  # the texts below are assumptions too (README)
                return problem(404, "Not Found", not_linked(discord_id))
            if not account["units"]:
                return problem(400, "Bad Request", Assumed.NO_UNITS)
            idents = list(account["units"])
            if operation == "attach_unit":
                call_id = int(path.split("/")[-2])
                if call_id not in server.active:
                    return problem(404, "Not Found", Assumed.NO_DISPATCH_CALL.format(call_id=call_id))
                call = server.active[call_id]
                call["idents"] = [*call.get("idents", []), *(i for i in idents if i not in call.get("idents", []))]
                return web.json_response({"callId": call_id, "identIds": idents})
            for call in server.active.values():
                call["idents"] = [i for i in call.get("idents", []) if i not in idents]
            return web.json_response({"identIds": idents})
        if operation == "close_call":
            ids = [int(i) for i in (body or {}).get("callIds", [])]
            missing = [i for i in ids if i not in server.active]
            if missing:
                return problem(404, "Not Found", Assumed.NO_DISPATCH_CALL.format(call_id=missing[0]))
            for call_id in ids:
                self._close(server, call_id)
            return web.json_response({"callIds": ids})
        return problem(404, "Not Found", Assumed.NO_ROUTE)

    # --- shared ----------------------------------------------------------------------------------
    def _server_list(self) -> list[dict[str, Any]]:
        return [{"id": s, "name": f"Server {s}", "description": "", "signal": None} for s in self.servers]

    def _file(self, server: ServerCalls, item: dict[str, Any]) -> int:
        call_id = self._new_id()
        server.emergency[call_id] = {
            "callId": call_id,
            "isEmergency": bool(item.get("isEmergency", True)),
            "caller": item.get("caller", ""),
            "location": item.get("location", ""),
            "description": item.get("description", ""),
            "metaData": item.get("metaData") or {},
        }
        return call_id

    def _close(self, server: ServerCalls, call_id: int) -> None:
        call = server.active.pop(call_id)
        call["status"] = 2
        server.closed.insert(0, call)

    def _call_list(self, server: ServerCalls, query: dict[str, Any], *, wrapper_case: str) -> dict[str, Any]:
        limit = int(query.get("closedLimit", 10))
        offset = int(query.get("closedOffset", 0))
        out = {
            "ActiveCalls": list(server.active.values()),
            "EmergencyCalls": list(server.emergency.values()),
            "ClosedCalls": server.closed[offset : offset + limit],
        }
        if wrapper_case == "camel":
            return {key[0].lower() + key[1:]: value for key, value in out.items()}
        out["ClosedCallCount"] = len(server.closed)  # type: ignore[assignment]
        return out


def _unit_page(server: ServerCalls, query: dict[str, Any], *, v2: bool) -> list[dict[str, Any]] | str:
    """A page of the units list as `limit` (1 to 100) and `offset` ask; dispatchers left out with
    `onlyUnits` (the default), units logged off put in with `includeOffline`. A value Sonoran
    refuses: why, as a string. v2 takes query strings ("true", "25"), v1 JSON values."""
    flags: dict[str, bool] = {}
    for name, default in (("onlyUnits", True), ("includeOffline", False)):
        flag: Any = query.get(name, default)
        if v2 and flag in ("true", "false"):
            flag = flag == "true"
        if not isinstance(flag, bool):
            return Assumed.BAD_FLAG.format(name=name)
        flags[name] = flag
    numbers: dict[str, int] = {}
    for name, fallback, low, high, why in (
        ("limit", UNITS_LIMIT, 1, UNITS_LIMIT, Assumed.BAD_LIMIT),
        ("offset", 0, 0, 2**31 - 1, Assumed.BAD_OFFSET),
    ):
        number: Any = query.get(name, fallback)
        if v2 and isinstance(number, str) and number.isascii() and number.isdigit():
            number = int(number)
        if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
            return why
        numbers[name] = number
    everyone = {**(server.offline if flags["includeOffline"] else {}), **server.units}
    units = [u for _, u in sorted(everyone.items()) if not (flags["onlyUnits"] and u["isDispatch"])]
    return units[numbers["offset"] : numbers["offset"] + numbers["limit"]]


def _note(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "time": "2026-11-22T12:00:00Z",
        "label": item.get("label", ""),
        "type": item.get("noteType", "text"),
        "content": item.get("note", ""),
    }


def _v2_operation(method: str, path: str) -> str:
    routes = [
        ("GET", r"/v2/general/version", "get_version"),
        ("GET", r"/v2/general/servers", "get_servers"),
        ("GET", r"/v2/emergency/servers/\d+/calls", "get_calls"),
        ("POST", r"/v2/emergency/servers/\d+/calls/911", "call_911"),
        ("DELETE", r"/v2/emergency/servers/\d+/calls/911/\d+", "remove_911"),
        ("POST", r"/v2/emergency/servers/\d+/dispatch-calls/\d+/notes", "add_call_note"),
        ("POST", r"/v2/emergency/servers/\d+/dispatch-calls/close", "close_call"),
        ("POST", r"/v2/emergency/servers/\d+/dispatch-calls/\d+/attachments", "attach_unit"),
        ("DELETE", r"/v2/emergency/servers/\d+/dispatch-calls/attachments", "detach_unit"),
        ("GET", r"/v2/general/accounts/account", "get_account"),
        ("GET", r"/v2/emergency/servers/\d+/units", "get_active_units"),
        ("PATCH", r"/v2/emergency/servers/\d+/units/status", "unit_status"),
        ("PATCH", r"/v2/emergency/servers/\d+/units/panic", "unit_panic"),
        ("POST", r"/v2/general/lookups", "lookup"),
    ]
    for route_method, pattern, name in routes:
        if method == route_method and re.fullmatch(pattern, path):
            return name
    return "unknown"
