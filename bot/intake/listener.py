"""The push listener: a small aiohttp server inside the bot that takes Sonoran push events.

`POST {path}` takes events for the configured server; `POST {path}/{server_id}` names the server
(one URL per game server, for FiveM forwarding). Which community a request is for (its key, its
server, where its events go: a `PushRoute`) is resolved from what its path holds after `path`,
before a byte of its body is read (`resolve`, given by `bot.intake.router`: one community in the
TOML mode, a path token per community in hosted mode); a path that resolves to nothing is a wrong
path, answered 404 like any other. Answers, as the FiveM receiver does, in plain
text: 200 `ok` (or `ok - ignored` for an event that changes no feed), 400 for a body that is not a
JSON object with `type` and `data` (too deep, or a key that is not text, included), 401 for a wrong
or missing key, 413 over 1 MiB or over MAX_EVENTS_PER_REQUEST events, 404 for another path.

The 200 is a promise: it goes back only once `deliver` has planned and stored the events, so a
SIGKILL right after it loses nothing. When the bot cannot keep up it says so instead of queueing
without limit: 503 with `Retry-After` while MAX_PENDING requests wait to be stored, when the store
fails, or for a body past SMALL_BODY while the bodies being read hold MAX_HELD_BYTES (counted as
read, not as declared); 429 with `Retry-After` past MAX_EVENTS_PER_MINUTE from one community (each counts its own).

It faces the internet, and its caps refuse the attacker, not the CAD (docs/push-listener.md):
- `allow_from` (networks): a connection from elsewhere is closed at accept, before a byte is read;
- at most MAX_CONNECTIONS are open: a newcomer over the cap closes the OLDEST connection that has
  not proved itself (no request answered 200 yet, and none being stored now); the CAD opens a
  fresh connection per event, so it is the newest. Past half the cap, a connection has
  PRESSED_FIRST_REQUEST instead of IDLE_TIMEOUT for its first request;
- a connection that sends no complete request within IDLE_TIMEOUT (idle, or slow headers) is
  closed, a body must arrive within BODY_TIMEOUT, and a connection whose request is not answered
  200 is closed after its answer;
- a body past KEY_WINDOW is refused 401 from its first bytes when their `key` is wrong, without
  holding or parsing the rest;
- nothing a sender does logs a traceback, malformed HTTP included: one line per change of state.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import math
import os
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..sonoran.events import BadEnvelope, Event, Ignored, events_of, key_matches, read_envelope
from ..sonoran.models import ServerId
from ..sonoran.ratelimit import SlidingWindowLimiter
from ..statechanges import StateChanges
from .keyscan import leading_key

if TYPE_CHECKING:
    from ..config import PushSettings

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
REFUSAL_LOG_SECONDS = 60.0
MAX_EVENTS_PER_REQUEST = 100  # Sonoran sends one event a request; a forwarder may batch a few
MAX_EVENTS_PER_MINUTE = 3000  # a busy community sends a few a second at its peak
MAX_BUDGETS = 10_000  # per-community event counts kept at once
MAX_PENDING = 128  # requests waiting for their events to be stored
MAX_HELD_BYTES = 32 * 1024 * 1024  # body bytes read and not yet answered, all requests together
SMALL_BODY = 64 * 1024  # what one request holds before MAX_HELD_BYTES applies (an event is a few KiB)
MAX_CONNECTIONS = 256
IDLE_TIMEOUT = 15.0  # seconds to a complete request line and headers, on a new or kept-alive connection
PRESSED_FIRST_REQUEST = 3.0  # ... for a new connection's first request, past half MAX_CONNECTIONS
BODY_TIMEOUT = 15.0  # seconds for the body, once the headers are in
RETRY_AFTER = 5  # seconds, in a 503
KEY_WINDOW = 16 * 1024  # a longer body's key is checked on its first KEY_WINDOW bytes, before the rest
READ_CHUNK = 64 * 1024  # aiohttp's read buffer per connection (it stops reading the socket past twice that)
MAX_HEADERS = 32  # header lines in a request (aiohttp's default: 128); each at most 8,190 bytes
EPISODE_QUIET = 60.0  # seconds without a kind of trouble before it is over (and logged again when it comes)


def raise_open_file_limit() -> tuple[int, int]:
    """Raises the soft limit of open files to the hard one (systemd's default soft limit, 1,024, is
    a handful of idle connections away from failing the CAD polls); returns (soft, hard) as now set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warning("push: cannot raise the open-file limit from %s to %s (%s)", soft, hard, error)
    return soft, hard


def listener_url(host: str, port: int, path: str, server_id: ServerId | None = None) -> str:
    """The URL a sender on this machine reaches the listener at (0.0.0.0 is every address)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}{path.rstrip('/')}" + (f"/{server_id}" if server_id is not None else "")


def push_url(push: PushSettings, token: str, base: str | None = None) -> str:
    """A hosted community's push URL, `{path}/{token}` (`/setup show`): on `base` (the public
    address, e.g. `https://bot.example.com`, which the bot cannot know), else on this machine's."""
    if base is None:
        return f"{listener_url(push.host, push.port, push.path)}/{token}"
    return f"{base.rstrip('/')}{push.path.rstrip('/')}/{token}"


def server_of(segment: str) -> ServerId | None:
    """The CAD server id a path segment names (digits only), or None."""
    return int(segment) if segment.isascii() and segment.isdigit() and len(segment) < 19 else None


def sample_event(api_key: str, *, post: bool) -> bytes:
    """For `push-test`: an event the feed ignores, or (`post`) a civil 911 call #0 it posts."""
    if not post:
        return json.dumps({"key": api_key, "type": "EVENT_PUSH_TEST", "data": {}}).encode()
    call = {
        "callId": 0,
        "isEmergency": False,
        "caller": "push-test",
        "location": "the bot's listener",
        "description": "A sample event sent by `push-test`; remove it in the CAD or ignore it.",
        "metaData": {"source": "push-test"},
    }
    return json.dumps({"key": api_key, "type": "EVENT_911", "data": {"call": call}}).encode()


def privileged_port(port: int) -> str:
    """Why binding `port` is refused, when it is below 1024 and the bot is not root; else ""."""
    if 0 < port < 1024 and hasattr(os, "geteuid") and os.geteuid() != 0:
        return (
            f"ports below 1024 need root (or CAP_NET_BIND_SERVICE) and the bot runs as uid {os.geteuid()}; "
            "use a port of 1024 or more (3232, the default), and forward 80/443 to it in a reverse proxy"
        )
    return ""


class PushListenerError(Exception):
    """The listener cannot start (its port is taken, its host is not an address of this machine)."""


@dataclass(frozen=True)
class PushAnswer:
    status: int
    text: str
    retry_after: int | None = None  # seconds, for 429 and 503


OK = PushAnswer(200, "ok")
IGNORED = PushAnswer(200, "ok - ignored")
BAD_REQUEST = PushAnswer(400, '{"error":"bad request"}')
BAD_KEY = PushAnswer(401, "error")
TOO_MANY_EVENTS = PushAnswer(413, f"error: more than {MAX_EVENTS_PER_REQUEST} events in one request")
BUSY = PushAnswer(503, "error: busy, send it again later")
NOT_STORED = PushAnswer(503, "error: the event could not be stored, send it again later")


@dataclass(frozen=True)
class PushRoute:
    """Where one request's events go: one community's key, the server its events are for, and its
    feed's `routes`, `takes` and `deliver` (see `PushListener`)."""

    label: str  # the community's name, for log lines (never its key)
    api_key: str = field(repr=False)
    server_id: ServerId
    routes: Callable[[ServerId], bool]
    takes: Callable[[ServerId, Event], bool]
    deliver: Callable[[ServerId, list[Event]], Awaitable[None]]
    # cluster mode, a community another process owns: the checked body is stored for the owner
    # (`bot.cluster.Inbox`) instead of handed to an engine; stored before the 200 all the same
    forward: Callable[[ServerId, bytes], Awaitable[None]] | None = None

    def for_server(self, server_id: ServerId) -> PushRoute:
        return self if server_id == self.server_id else replace(self, server_id=server_id)


# what a request's path holds after the listener's `path`, without its slashes ("" for `path`
# itself, "1" for `path/1`) -> its route, or None for a wrong path; called before the body is read
Resolve = Callable[[str], PushRoute | None]


def one_route(route: PushRoute) -> Resolve:
    """One community's listener: `path` itself is `route`, `path/<server_id>` is `route` for that
    server, anything else a wrong path."""

    def resolve(tail: str) -> PushRoute | None:
        if not tail:
            return route
        server_id = server_of(tail)
        return route.for_server(server_id) if server_id is not None else None

    return resolve


@dataclass
class ListenerStats:
    """What the listener refused or closed since it started (the benchmarks print them)."""

    evicted: int = 0  # closed to make room for a newcomer: had not proved itself
    refused_full: int = 0  # newcomers closed at once: every open connection had proved itself
    expired: int = 0  # closed for sending no complete request in time
    body_timeouts: int = 0  # 408: a body that did not arrive within BODY_TIMEOUT
    outside_allow_from: int = 0  # closed at accept
    malformed: int = 0  # malformed HTTP: 400 and closed
    wrong_key: int = 0  # 401, all of them
    wrong_key_early: int = 0  # ... of which from a body's first KEY_WINDOW bytes
    over_memory: int = 0  # 503: the bodies being read held MAX_HELD_BYTES
    peak_held_bytes: int = 0  # the most body bytes held at once


class _Episode:
    """A kind of trouble logged once when it starts, not once per connection: it is over once
    EPISODE_QUIET seconds pass without it, which is said (with its count) when the listener is next
    used or when the trouble comes back."""

    def __init__(self, what: str, clock: Callable[[], float]) -> None:
        self._what = what
        self._clock = clock
        self._last: float | None = None
        self._count = 0

    def hit(self, detail: str) -> None:
        now = self._clock()
        self.end_if_quiet(now)
        if self._last is None:
            log.warning("push: %s (%s; one line until it has stopped for %.0f s)", self._what, detail, EPISODE_QUIET)
        self._last = now
        self._count += 1

    def end_if_quiet(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        if self._last is not None and now - self._last >= EPISODE_QUIET:
            log.info("push: no more %s for %.0f s (%d in that episode)", self._what, EPISODE_QUIET, self._count)
            self._last = None
            self._count = 0


class PushListener:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str,
        resolve: Resolve,
        allow_from: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`resolve(tail)`: the route of a request whose path is `path/{tail}` (`tail` "" for `path`
        itself), or None (404, a wrong path); called for every request before its body is read, so
        it is cheap and decides on the path alone. A route's `routes(server_id)`: does anything take
        this server's events (a feed, a board, an alert); `takes(server_id, event)`: does anything
        take this one; `deliver(server, events)`: plans and stores accepted events, returning once
        they are stored (raising if they cannot be). The caps below are the listener's, shared by
        every route. `allow_from`: the networks (CIDR) connections are taken from; empty: any."""
        self.host = host
        self.port = port
        self.path = path.rstrip("/")
        self._resolve = resolve
        self._clock = clock
        self._networks = [ipaddress.ip_network(network) for network in allow_from]
        self._refusals_logged: dict[tuple[str, str], float] = {}
        self._runner: web.ServerRunner | None = None
        self._pending = 0
        self._held_bytes = 0
        # events a minute, counted per community (per CAD key, as Sonoran counts): one community's
        # flood is answered 429 without touching another's
        self.events_per_minute = MAX_EVENTS_PER_MINUTE
        self.budget_clock = clock
        self._budgets: dict[str, SlidingWindowLimiter] = {}
        self._state = StateChanges()  # ok | busy: logged once per change
        self.stats = ListenerStats()
        self._episodes = {
            "full": _Episode(f"{MAX_CONNECTIONS} connections are open, the cap", clock),
            "outside": _Episode("closing connections from outside push.allow_from", clock),
            "malformed": _Episode("answering malformed HTTP 400 and closing", clock),
            "memory": _Episode(f"bodies being read hold {MAX_HELD_BYTES // 2**20} MiB; big ones answered 503", clock),
        }

    def __repr__(self) -> str:
        return f"PushListener({self.host}:{self.port}{self.path})"

    @property
    def held_bytes(self) -> int:
        """Body bytes read and not answered yet, all requests together."""
        return self._held_bytes

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from `port` when that was 0)."""
        if self._runner is not None:
            for site in self._runner.sites:
                server = getattr(site, "_server", None)
                sockets = getattr(server, "sockets", None) or []
                for sock in sockets:
                    return int(sock.getsockname()[1])
        return self.port

    async def start(self) -> None:
        server = _GuardedServer(
            self._handle,
            listener=self,
            keepalive_timeout=IDLE_TIMEOUT,
            lingering_time=0.0,  # what a refused request still sends is not waited for
            access_log=None,
            read_bufsize=READ_CHUNK,
            max_headers=MAX_HEADERS,
        )
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as error:
            await runner.cleanup()
            why = privileged_port(self.port) if error.errno == errno.EACCES else ""
            if why:
                raise PushListenerError(f"push.port {self.port} on {self.host}: {why}") from None
            raise PushListenerError(
                f"push.port {self.port} on {self.host}: {error.strerror or error} "
                "(another program holds the port, or push.host is not an address of this machine); "
                "change push.port or push.host, or set push.enabled = false"
            ) from None
        self._runner = runner
        log.info("push: listening on http://%s:%s%s", self.host, self.bound_port, self.path)
        if self._networks:
            log.info("push: taking connections from %s only", ", ".join(map(str, self._networks)))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def allows(self, peer: str | None) -> bool:
        """Is a connection from `peer` (an address) taken: `allow_from` is empty, or holds it."""
        if not self._networks:
            return True
        try:
            address = ipaddress.ip_address((peer or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d
        return any(address in network for network in self._networks)

    def _route(self, request: web.BaseRequest) -> PushRoute | None:
        """The route a request's path names, or None (a wrong path)."""
        path = request.path.rstrip("/")
        if path == self.path:
            return self._resolve("")
        tail = path.removeprefix(self.path + "/")
        return self._resolve(tail) if tail != path else None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        connection = request.protocol if isinstance(request.protocol, _GuardedHandler) else None
        if connection is not None:
            connection.request_started()
        response: web.StreamResponse | None = None
        try:
            response = await self._answer_request(request, connection)
            return response
        finally:
            if connection is not None:
                connection.request_done(proven=response is not None and response.status == 200)
            if response is not None and response.status != 200:
                response.force_close()  # a connection that has not proved itself is not kept

    async def _answer_request(self, request: web.BaseRequest, connection: _GuardedHandler | None) -> web.StreamResponse:
        route = self._route(request)
        if route is None:  # a path outside `path`, or one that names no community: the same answer
            return web.Response(status=404, text="error: not found")
        if request.method != "POST":
            return web.Response(status=405, text="error: POST only", headers={"Allow": "POST"})
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413, text="error: the body is over 1 MiB")
        held = _Held()
        source = request.remote or "?"
        try:
            try:
                body = await asyncio.wait_for(self._read_body(request, held, source, route), BODY_TIMEOUT)
            except TimeoutError:
                self.stats.body_timeouts += 1
                return web.Response(status=408, text="error: the body did not arrive in time")
            except (HttpProcessingError, RequestPayloadError) as error:  # bad chunks, a short body
                self.malformed(source, error)
                return web.Response(status=400, text=BAD_REQUEST.text)
            except ConnectionError:  # the sender is gone (or was closed to make room): nobody to answer
                return web.Response(status=400, text=BAD_REQUEST.text)
            if isinstance(body, web.Response):
                return body
            if connection is not None:
                connection.answering()
            answer = await self.answer(body, route, source)
        finally:
            self._release(held)
        headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else None
        return web.Response(status=answer.status, text=answer.text, headers=headers)

    async def _read_body(
        self, request: web.BaseRequest, held: _Held, source: str, route: PushRoute
    ) -> bytes | web.Response:
        """The whole body, held and counted as it is read; or the answer that ends it early: 413
        past MAX_BODY, 503 past the memory cap, 401 for a wrong key in a long body's first bytes."""
        parts: list[bytes] = []
        checked = False
        while chunk := await _read_some(request, min(READ_CHUNK, MAX_BODY + 1 - held.size)):
            if held.size + len(chunk) > MAX_BODY:
                return web.Response(status=413, text="error: the body is over 1 MiB")
            if not self._hold(held, len(chunk)):
                self.stats.over_memory += 1
                self._episodes["memory"].hit(f"the last from {source}")
                return web.Response(status=503, text=BUSY.text, headers={"Retry-After": str(RETRY_AFTER)})
            parts.append(chunk)
            if not checked and held.size >= KEY_WINDOW:
                checked = True
                parts = [b"".join(parts)]
                key = leading_key(parts[0][:KEY_WINDOW])
                if key is not None and not key_matches(key, route.api_key):
                    self._release(held)
                    parts.clear()
                    await _drain(request, MAX_BODY)  # read and dropped, so that the 401 is read, not reset
                    self.stats.wrong_key_early += 1
                    self._refused_key(source, route)
                    return web.Response(status=BAD_KEY.status, text=BAD_KEY.text)
        return b"".join(parts)

    def _hold(self, held: _Held, size: int) -> bool:
        """Counts `size` more bytes held by one request; False when it may not hold them: past
        SMALL_BODY, the bytes held by every request together are capped at MAX_HELD_BYTES."""
        if held.size + size > SMALL_BODY and self._held_bytes + size > MAX_HELD_BYTES:
            return False
        held.size += size
        self._held_bytes += size
        self.stats.peak_held_bytes = max(self.stats.peak_held_bytes, self._held_bytes)
        return True

    def _release(self, held: _Held) -> None:
        self._held_bytes -= held.size
        held.size = 0

    async def answer(self, body: bytes, route: PushRoute, source: str) -> PushAnswer:
        """The whole decision for one request to `route`, without HTTP (the SignalR session uses it
        too): checked against the route's key, handed to the route's `deliver` only."""
        server_id = route.server_id
        try:
            envelope = read_envelope(body)
        except BadEnvelope:
            return BAD_REQUEST
        if not key_matches(envelope.key, route.api_key):
            self._refused_key(source, route)
            return BAD_KEY
        if not route.routes(server_id):
            return IGNORED
        if len(envelope.data) > MAX_EVENTS_PER_REQUEST:
            return TOO_MANY_EVENTS
        events: list[Event] = [
            event for event in events_of(envelope) if not isinstance(event, Ignored) and route.takes(server_id, event)
        ]
        if not events:
            return IGNORED
        if self._pending >= MAX_PENDING:
            self._changed("busy", f"{MAX_PENDING} requests wait to be stored; answering 503")
            return PushAnswer(BUSY.status, BUSY.text, RETRY_AFTER)
        wait = self._budget_of(route).take(len(events))
        if wait:
            self._changed("busy", f"{route.label}: over {self.events_per_minute} events a minute; answering 429")
            return PushAnswer(429, f"error: over {self.events_per_minute} events a minute", max(1, math.ceil(wait)))
        self._pending += 1
        try:
            if route.forward is not None:
                await route.forward(server_id, body)
            else:
                await route.deliver(server_id, events)
        except Exception:  # logged where it failed; the sender is told to send it again
            return PushAnswer(NOT_STORED.status, NOT_STORED.text, RETRY_AFTER)
        finally:
            self._pending -= 1
        self._changed("ok", "")
        now = self._clock()
        for episode in self._episodes.values():
            episode.end_if_quiet(now)
        return OK

    # --- what the connections report ------------------------------------------------------------
    def _budget_of(self, route: PushRoute) -> SlidingWindowLimiter:
        budget = self._budgets.get(route.api_key)
        if budget is None:
            if len(self._budgets) >= MAX_BUDGETS:  # communities removed since: start the count afresh
                self._budgets.clear()
            budget = self._budgets[route.api_key] = SlidingWindowLimiter(
                self.events_per_minute, 60.0, clock=self.budget_clock
            )
        return budget

    def evicted(self, peer: str) -> None:
        self.stats.evicted += 1
        self._episodes["full"].hit(f"closing the oldest connection that has not proved itself to make room, {peer}")

    def refused_full(self) -> None:
        self.stats.refused_full += 1
        self._episodes["full"].hit("every one has proved itself: closing newcomers as they come")

    def outside(self, peer: str) -> None:
        self.stats.outside_allow_from += 1
        self._episodes["outside"].hit(f"the first from {peer}")

    def malformed(self, peer: str, error: BaseException) -> None:
        self.stats.malformed += 1
        what = (str(getattr(error, "message", "") or "").strip().splitlines() or [type(error).__name__])[0]
        self._episodes["malformed"].hit(f"the first from {peer}: {what[:120]!r}")

    def _changed(self, state: str, detail: str) -> None:
        if self._state.change(0, state) is None:
            return
        if state == "ok":
            log.info("push: taking events again")
        else:
            log.warning("push: %s", detail)

    def _refused_key(self, source: str, route: PushRoute) -> None:
        self.stats.wrong_key += 1
        now = self._clock()
        # per community too: behind a shared reverse proxy every sender has the proxy's address
        seen = (route.label, source)
        if now - self._refusals_logged.get(seen, -REFUSAL_LOG_SECONDS) < REFUSAL_LOG_SECONDS:
            return
        if len(self._refusals_logged) > 10_000:  # a scan from many addresses must not grow this forever
            self._refusals_logged = {s: t for s, t in self._refusals_logged.items() if now - t < REFUSAL_LOG_SECONDS}
        self._refusals_logged[seen] = now
        log.warning(
            "push: refused an event from %s for %s: wrong or missing key (logged once a minute per address)",
            source,
            route.label,
        )


@dataclass
class _Held:
    """The body bytes one request holds, counted as they are read."""

    size: int = 0


async def _read_some(request: web.BaseRequest, size: int) -> bytes:
    """Up to `size` bytes of the body as they come (b"" at its end)."""
    try:
        return await request.content.read(size)
    except RuntimeError:
        if request.transport is None:  # aiohttp's word for a read after the connection was closed
            raise ConnectionResetError("the connection was closed") from None
        raise


async def _drain(request: web.BaseRequest, limit: int) -> None:
    """Reads what is left of a body, up to `limit` bytes, holding none of it."""
    left = limit
    while left > 0 and (chunk := await _read_some(request, min(READ_CHUNK, left))):
        left -= len(chunk)


class _GuardedServer(web.Server):
    """aiohttp's low-level server with the listener's guards at accept: `allow_from`, and the cap on
    open connections, which makes room by closing the oldest connection that has not proved itself."""

    def __init__(self, handler: Any, *, listener: PushListener, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.listener = listener
        self.open: dict[_GuardedHandler, None] = {}  # by age: the oldest first

    def __call__(self) -> web.RequestHandler:
        return _GuardedHandler(self, loop=asyncio.get_running_loop(), guard=self, **self._kwargs)

    def admit(self, newcomer: _GuardedHandler) -> float | None:
        """Registers a new connection; returns the seconds it has for its first request, or None
        when it is to be closed (every other one has proved itself)."""
        self.open[newcomer] = None
        first_request = IDLE_TIMEOUT
        if len(self.open) > MAX_CONNECTIONS // 2:
            first_request = PRESSED_FIRST_REQUEST
            self._expire_first_requests(newcomer.opened - PRESSED_FIRST_REQUEST)
        if len(self.open) <= MAX_CONNECTIONS:
            return first_request
        for connection in self.open:
            if connection is not newcomer and connection.evictable():
                self.listener.evicted(connection.peer)
                connection.close_now()
                return first_request
        self.listener.refused_full()
        return None

    def _expire_first_requests(self, opened_before: float) -> None:
        """Past half the cap: closes the connections opened before `opened_before` still waiting
        for their first request."""
        for connection in list(self.open):
            if connection.opened >= opened_before:
                break  # the rest are younger
            if connection.stage == "waiting" and not connection.proven:
                self.listener.stats.expired += 1
                connection.close_now()

    def gone(self, connection: _GuardedHandler) -> None:
        self.open.pop(connection, None)


class _GuardedHandler(web.RequestHandler):
    """One connection: refused at accept from outside `allow_from`; closed to make room when it has
    not proved itself (no request answered 200, none being answered); closed when no complete
    request (line and headers) comes within IDLE_TIMEOUT of its opening (PRESSED_FIRST_REQUEST past
    half the cap) or of its last answer. Malformed HTTP is answered 400 with one line per episode."""

    def __init__(self, manager: _GuardedServer, *, guard: _GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self.opened = 0.0
        self.peer = "?"
        self.stage: Literal["waiting", "reading", "answering", "closed"] = "waiting"
        self.proven = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        if not self._guard.listener.allows(self.peer):
            self.stage = "closed"
            self._guard.listener.outside(self.peer)
            _abort(transport)  # before anything is read: aiohttp never sees this connection
            return
        self.opened = asyncio.get_running_loop().time()
        super().connection_made(transport)
        first_request = self._guard.admit(self)
        if first_request is None:
            self.close_now()
            return
        self._wait_for_request(first_request)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_deadline()
        self.stage = "closed"
        self._guard.gone(self)
        super().connection_lost(exc)

    def evictable(self) -> bool:
        return not self.proven and self.stage in ("waiting", "reading")

    def close_now(self) -> None:
        """Closes the connection at once, its file handle freed (nothing more is sent or read)."""
        self._cancel_deadline()
        self.stage = "closed"
        self._guard.gone(self)
        transport = self.transport
        self.force_close()  # forgets the transport: it is aborted below, not closed gracefully
        if transport is not None:
            _abort(transport)

    def request_started(self) -> None:
        """A request's headers are in: its body has its own timeout."""
        self._cancel_deadline()
        if self.stage != "closed":
            self.stage = "reading"

    def answering(self) -> None:
        """The whole body is in: its answer is being made (and its events perhaps stored)."""
        if self.stage != "closed":
            self.stage = "answering"

    def request_done(self, *, proven: bool) -> None:
        """The connection waits for its next request: it has IDLE_TIMEOUT to send one."""
        self.proven = self.proven or proven
        if self.stage != "closed":
            self.stage = "waiting"
            self._wait_for_request(IDLE_TIMEOUT)

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """Malformed HTTP (a garbage request line, huge headers, Content-Length with
        Transfer-Encoding) and a sender gone mid-request are the sender's doing: answered 400 and
        closed, one line per episode, never aiohttp's ERROR with a traceback."""
        if isinstance(exc, HttpProcessingError | RequestPayloadError | ConnectionError):
            if not isinstance(exc, ConnectionError):
                self._guard.listener.malformed(self.peer, exc)
            response = web.Response(status=400, text=BAD_REQUEST.text)
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)

    def _wait_for_request(self, seconds: float) -> None:
        self._cancel_deadline()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        self._guard.listener.stats.expired += 1
        self.close_now()


def _abort(transport: asyncio.BaseTransport) -> None:
    """Closes a socket at once (its file handle freed, nothing more sent or read)."""
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()
