"""The push listener: a small aiohttp server inside the bot that takes Sonoran push events.

`POST {path}` takes events for the configured server; `POST {path}/{server_id}` names the server
(one URL per game server, for FiveM forwarding). Answers, as the FiveM receiver does, in plain
text: 200 `ok` (or `ok - ignored` for an event that changes no feed), 400 for a body that is not a
JSON object with `type` and `data` (too deep, or a key that is not text, included), 401 for a wrong
or missing key, 413 over 1 MiB or over MAX_EVENTS_PER_REQUEST events, 404 for another path.

The 200 is a promise: it goes back only once `deliver` has planned and stored the events, so a
SIGKILL right after it loses nothing. When the bot cannot keep up it says so instead of queueing
without limit: 503 with `Retry-After` while MAX_PENDING requests wait to be stored, while bodies
being read hold MAX_HELD_BYTES, or when the store fails; 429 with `Retry-After` past
MAX_EVENTS_PER_MINUTE.

It faces the internet: a connection that sends no complete request within IDLE_TIMEOUT (idle,
or slow headers) is closed, a body must arrive within BODY_TIMEOUT, at most MAX_CONNECTIONS are
open at once (more are closed as they come), and nothing a sender does logs a traceback: one line
per change of state.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..sonoran.events import BadEnvelope, Event, Ignored, events_of, key_matches, read_envelope
from ..sonoran.models import ServerId
from ..sonoran.ratelimit import SlidingWindowLimiter
from ..statechanges import StateChanges

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
REFUSAL_LOG_SECONDS = 60.0
MAX_EVENTS_PER_REQUEST = 100  # Sonoran sends one event a request; a forwarder may batch a few
MAX_EVENTS_PER_MINUTE = 3000  # a busy community sends a few a second at its peak
MAX_PENDING = 128  # requests waiting for their events to be stored
MAX_HELD_BYTES = 32 * 1024 * 1024  # bodies being read or waiting, all requests together
MAX_CONNECTIONS = 256
IDLE_TIMEOUT = 15.0  # seconds to a complete request line and headers, on a new or kept-alive connection
BODY_TIMEOUT = 15.0  # seconds for the body, once the headers are in
RETRY_AFTER = 5  # seconds, in a 503


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


class PushListener:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str,
        default_server_id: ServerId,
        api_key: str,
        routes: Callable[[ServerId], bool],
        takes: Callable[[ServerId, Event], bool],
        deliver: Callable[[ServerId, list[Event]], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`routes(server_id)`: does anything take this server's events (a feed, a board, an alert);
        `takes(server_id, event)`: does anything take this one; `deliver(server, events)`:
        plans and stores accepted events, returning once they are stored (raising if they cannot be)."""
        self.host = host
        self.port = port
        self.path = path.rstrip("/")
        self.default_server_id = default_server_id
        self._key = api_key
        self._routes = routes
        self._takes = takes
        self._deliver = deliver
        self._clock = clock
        self._refusals_logged: dict[str, float] = {}
        self._runner: web.ServerRunner | None = None
        self._pending = 0
        self._held_bytes = 0
        self._budget = SlidingWindowLimiter(MAX_EVENTS_PER_MINUTE, 60.0, clock=clock)
        self._state = StateChanges()  # ok | busy | full (connections): logged once per change

    def __repr__(self) -> str:
        return f"PushListener({self.host}:{self.port}{self.path})"

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
            on_full=self._connections_full,
            keepalive_timeout=IDLE_TIMEOUT,
            lingering_time=0.0,  # what a refused request still sends is not waited for
            access_log=None,
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

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _route(self, request: web.BaseRequest) -> ServerId | None:
        """The server a request's path names (the default one for `path` itself), or None."""
        path = request.path.rstrip("/")
        if path == self.path:
            return self.default_server_id
        tail = path.removeprefix(self.path + "/")
        if tail != path and tail.isascii() and tail.isdigit() and len(tail) < 19:
            return int(tail)
        return None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        connection = request.protocol if isinstance(request.protocol, _GuardedHandler) else None
        if connection is not None:
            connection.request_started()
        try:
            return await self._answer_request(request)
        finally:
            if connection is not None:
                connection.request_done()

    async def _answer_request(self, request: web.BaseRequest) -> web.StreamResponse:
        server_id = self._route(request)
        if server_id is None:
            return web.Response(status=404, text="error: not found")
        if request.method != "POST":
            return web.Response(status=405, text="error: POST only", headers={"Allow": "POST"})
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _closing(web.Response(status=413, text="error: the body is over 1 MiB"))
        hold = request.content_length if request.content_length is not None else MAX_BODY
        if self._held_bytes + hold > MAX_HELD_BYTES:
            self._changed("busy", f"bodies being read hold {MAX_HELD_BYTES // 2**20} MiB; answering 503")
            return _closing(web.Response(status=503, text=BUSY.text, headers={"Retry-After": str(RETRY_AFTER)}))
        self._held_bytes += hold
        try:
            try:
                body = await asyncio.wait_for(_read_body(request), BODY_TIMEOUT)
            except TimeoutError:
                return _closing(web.Response(status=408, text="error: the body did not arrive in time"))
            if body is None:
                return _closing(web.Response(status=413, text="error: the body is over 1 MiB"))
            answer = await self.answer(body, server_id, request.remote or "?")
        finally:
            self._held_bytes -= hold
        headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else None
        return web.Response(status=answer.status, text=answer.text, headers=headers)

    async def answer(self, body: bytes, server_id: ServerId, source: str) -> PushAnswer:
        """The whole decision for one request, without HTTP (the SignalR session uses it too)."""
        try:
            envelope = read_envelope(body)
        except BadEnvelope:
            return BAD_REQUEST
        if not key_matches(envelope.key, self._key):
            self._log_refusal(source)
            return BAD_KEY
        if not self._routes(server_id):
            return IGNORED
        if len(envelope.data) > MAX_EVENTS_PER_REQUEST:
            return TOO_MANY_EVENTS
        events: list[Event] = [
            event for event in events_of(envelope) if not isinstance(event, Ignored) and self._takes(server_id, event)
        ]
        if not events:
            return IGNORED
        if self._pending >= MAX_PENDING:
            self._changed("busy", f"{MAX_PENDING} requests wait to be stored; answering 503")
            return PushAnswer(BUSY.status, BUSY.text, RETRY_AFTER)
        wait = self._budget.take(len(events))
        if wait:
            self._changed("busy", f"over {MAX_EVENTS_PER_MINUTE} events a minute; answering 429")
            return PushAnswer(429, f"error: over {MAX_EVENTS_PER_MINUTE} events a minute", max(1, math.ceil(wait)))
        self._pending += 1
        try:
            await self._deliver(server_id, events)
        except Exception:  # logged where it failed; the sender is told to send it again
            return PushAnswer(NOT_STORED.status, NOT_STORED.text, RETRY_AFTER)
        finally:
            self._pending -= 1
        self._changed("ok", "")
        return OK

    def _connections_full(self) -> None:
        self._changed("full", f"{MAX_CONNECTIONS} connections are open; closing new ones as they come")

    def _changed(self, state: str, detail: str) -> None:
        if self._state.change(0, state) is None:
            return
        if state == "ok":
            log.info("push: taking events again")
        else:
            log.warning("push: %s", detail)

    def _log_refusal(self, source: str) -> None:
        now = self._clock()
        if now - self._refusals_logged.get(source, -REFUSAL_LOG_SECONDS) < REFUSAL_LOG_SECONDS:
            return
        if len(self._refusals_logged) > 10_000:  # a scan from many addresses must not grow this forever
            self._refusals_logged = {s: t for s, t in self._refusals_logged.items() if now - t < REFUSAL_LOG_SECONDS}
        self._refusals_logged[source] = now
        log.warning("push: refused an event from %s: wrong or missing key (logged once a minute per address)", source)


async def _read_body(request: web.BaseRequest) -> bytes | None:
    """The whole body, or None once it is over MAX_BODY."""
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY + 1 - size):
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            return None
    return b"".join(parts)


def _closing(response: web.Response) -> web.Response:
    response.force_close()  # what is left of the body is not read
    return response


class _GuardedServer(web.Server):
    """aiohttp's low-level server with a cap on open connections: one over MAX_CONNECTIONS is
    closed as it comes (its file handle freed at once), and `on_full` is told."""

    def __init__(self, handler: Any, *, on_full: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._on_full = on_full

    def __call__(self) -> web.RequestHandler:
        return _GuardedHandler(self, loop=asyncio.get_running_loop(), guard=self, **self._kwargs)

    def too_many(self) -> bool:
        if len(self.connections) > MAX_CONNECTIONS:
            self._on_full()
            return True
        return False


class _GuardedHandler(web.RequestHandler):
    """One connection: closed when over the cap, and when no complete request (line and headers)
    comes within IDLE_TIMEOUT of its opening or of the last answer. (aiohttp's own keep-alive
    timer does not cover a connection's first request before 3.14.4.)"""

    def __init__(self, manager: _GuardedServer, *, guard: _GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._guard.too_many() and isinstance(transport, asyncio.Transport):
            self.force_close()
            transport.abort()
            return
        self.request_done()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.request_started()
        super().connection_lost(exc)

    def request_started(self) -> None:
        """A request's headers are in: its body has its own timeout."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def request_done(self) -> None:
        """The connection waits for a request: it has IDLE_TIMEOUT to send one."""
        self.request_started()
        self._deadline = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        self.force_close()
        if self.transport is not None:
            self.transport.close()
