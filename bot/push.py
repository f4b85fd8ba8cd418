"""The push listener: a small aiohttp server inside the bot that takes Sonoran push events.

`POST {path}` takes events for the configured server; `POST {path}/{server_id}` names the server
(one URL per game server, for FiveM forwarding). Answers, as the FiveM receiver does, in plain
text: 200 `ok` (or `ok - ignored` for an event that changes no feed), 400 for a body that is not a
JSON object with `type` and `data`, 401 for a wrong or missing key, 413 over 1 MiB. Nothing a
sender can send makes it answer 5xx or log a traceback.

An accepted event is handed to `deliver` (which queues it) before the answer goes back: the feed
posts it within moments, and the poll repairs what a crash between the two might lose.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .sonoran.events import BadEnvelope, Event, Ignored, events_of, key_matches, read_envelope
from .sonoran.models import ServerId

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
REFUSAL_LOG_SECONDS = 60.0


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


class PushListenerError(Exception):
    """The listener cannot start (its port is taken, its host is not an address of this machine)."""


@dataclass(frozen=True)
class PushAnswer:
    status: int
    text: str


OK = PushAnswer(200, "ok")
IGNORED = PushAnswer(200, "ok - ignored")
BAD_REQUEST = PushAnswer(400, '{"error":"bad request"}')
BAD_KEY = PushAnswer(401, "error")


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
        deliver: Callable[[ServerId, list[Event]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`routes(server_id)`: does any feed take this server's events; `deliver(server, events)`:
        takes accepted events (it must not block)."""
        self.host = host
        self.port = port
        self.path = path.rstrip("/")
        self.default_server_id = default_server_id
        self._key = api_key
        self._routes = routes
        self._deliver = deliver
        self._clock = clock
        self._refusals_logged: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self.events_accepted = 0
        # told of every accepted batch of events as it is handed on (for diagnostics and benchmarks)
        self.on_accepted: Callable[[ServerId, list[Event]], None] | None = None
        self.last_event_at: float | None = None  # clock time of the last event that reached a feed

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
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(self.path or "/", self._handle)
        app.router.add_post(f"{self.path}/{{server_id:\\d+}}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as error:
            await runner.cleanup()
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

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="error: the body is over 1 MiB")
        server = request.match_info.get("server_id")
        answer = self.answer(body, int(server) if server else self.default_server_id, request.remote or "?")
        return web.Response(status=answer.status, text=answer.text)

    def answer(self, body: bytes, server_id: ServerId, source: str) -> PushAnswer:
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
        events: list[Event] = [event for event in events_of(envelope) if not isinstance(event, Ignored)]
        if not events:
            return IGNORED
        self.events_accepted += len(events)
        self.last_event_at = self._clock()
        if self.on_accepted is not None:
            self.on_accepted(server_id, events)
        self._deliver(server_id, events)
        return OK

    def _log_refusal(self, source: str) -> None:
        now = self._clock()
        if now - self._refusals_logged.get(source, -REFUSAL_LOG_SECONDS) < REFUSAL_LOG_SECONDS:
            return
        if len(self._refusals_logged) > 10_000:  # a scan from many addresses must not grow this forever
            self._refusals_logged = {s: t for s, t in self._refusals_logged.items() if now - t < REFUSAL_LOG_SECONDS}
        self._refusals_logged[source] = now
        log.warning("push: refused an event from %s: wrong or missing key (logged once a minute per address)", source)
