"""Opt-in (`push.websocket = true`): the bot's own session on Sonoran's SignalR hub, one per feed
server, so that push events arrive without opening a port.

The protocol is pysignalr's (an optional extra: `pip install ".[websocket]"` in the checkout),
not a hand-written one. After every (re)connect the session calls
`authenticatev2(communityId, apiKey, serverId)`, as Sonoran's FiveM resource does; the hub then
calls the client method `pushEvent` with the same `{key, type, data}` envelope as the HTTP push,
as a JSON string or an object, which goes through the listener's own checks (`PushListener.answer`)
on the community's route. TOML mode only: a hosted deployment opens no sessions (`bot.intake.router`).

Sonoran does not document what happens when the game server holds a session for the same server
id: the bot may take the game server's events. `check` and the README say so, and advise a
dedicated server id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from ..backoff import Backoff
from ..sonoran.models import ServerId
from .listener import PushListener, PushListenerError, PushRoute

log = logging.getLogger(__name__)

HUB_PATH = "/apiWsHub"


class WebsocketUnavailable(PushListenerError):
    """pysignalr is not installed."""


class PushSessions:
    # waits before the next session after one ended: the FiveM resource's 2, 10, 30 s, then a minute
    retry_delays: tuple[float, ...] = (2.0, 10.0, 30.0, 60.0)

    def __init__(
        self,
        listener: PushListener,
        route: PushRoute,
        *,
        api_url: str,
        community_id: str,
        api_key: str,
        server_ids: list[ServerId],
    ) -> None:
        """`route`: the community whose events the sessions take (each session's for its server)."""
        try:
            from pysignalr.client import SignalRClient
        except ImportError:
            raise WebsocketUnavailable(
                'push.websocket = true needs pysignalr: pip install ".[websocket]" in the bot\'s checkout '
                "(or pip install pysignalr; or set push.websocket = false)"
            ) from None
        self._client_class = SignalRClient
        self.listener = listener
        self._routes = {server_id: route.for_server(server_id) for server_id in server_ids}
        self.url = api_url.rstrip("/") + HUB_PATH
        self._community = community_id
        self._key = api_key
        self.server_ids = server_ids
        self._tasks: list[asyncio.Task[None]] = []
        self.authenticated: dict[ServerId, int] = {}  # successful authentications per server (reconnects count)

    def __repr__(self) -> str:
        return f"PushSessions({self.url!r}, servers={self.server_ids})"

    def _count(self, server_id: ServerId) -> None:
        self.authenticated[server_id] = self.authenticated.get(server_id, 0) + 1

    def start(self) -> None:
        for server_id in self.server_ids:
            self._tasks.append(asyncio.create_task(self._session(server_id), name=f"push-websocket-{server_id}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _session(self, server_id: ServerId) -> None:
        """One session after another for `server_id`: a session ends when the hub closes it, when
        pysignalr gives up, or when `authenticatev2` is refused (the socket is then closed, never
        left open unauthenticated). Each end is logged with its reason once per change, and the next
        session waits longer each time, as the FiveM resource does; a successful authentication
        starts the waits over."""
        backoff = Backoff(steps=self.retry_delays)
        last_reason = ""
        while True:
            session = _Session(server_id, on_authenticated=functools.partial(self._count, server_id))
            client = self._client_class(self.url)

            async def authenticate(client: Any = client, session: _Session = session) -> None:
                arguments: Any = [self._community, self._key, session.server_id]
                await client.send("authenticatev2", arguments, on_invocation=session.authenticated)

            async def push_event(arguments: list[Any], server_id: ServerId = server_id) -> None:
                for payload in arguments:
                    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                    answer = await self.listener.answer(body, self._routes[server_id], "signalr")
                    if answer.status != 200:
                        log.warning("push websocket, server %s: an event was refused (%s)", server_id, answer.text)

            client.on_open(authenticate)  # on every (re)connect: the hub forgets us with the connection
            client.on("pushEvent", push_event)
            client.on_error(session.hub_error)  # without it, pysignalr ends the session on any hub error
            reason = await session.run(client)
            if session.authentications:
                backoff.succeeded()
            delay = backoff.failed()
            if reason != last_reason:
                log.warning(
                    "push websocket, server %s: session ended: %s; reconnecting in %.0f s", server_id, reason, delay
                )
                last_reason = reason
            else:
                log.debug("push websocket, server %s: session ended again: %s", server_id, reason)
            await asyncio.sleep(delay)


class _Session:
    """One SignalR session of one server: how it authenticated, and why it ended."""

    def __init__(self, server_id: ServerId, *, on_authenticated: Callable[[], None]) -> None:
        self.server_id = server_id
        self.authentications = 0
        self._on_authenticated = on_authenticated
        self._refused = asyncio.Event()
        self._reason = ""

    async def run(self, client: Any) -> str:
        """Runs `client` until it ends or authentication is refused; the reason, in words."""
        runner = asyncio.ensure_future(client.run())
        refusal = asyncio.ensure_future(self._refused.wait())
        try:
            await asyncio.wait({runner, refusal}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (runner, refusal):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        if self._refused.is_set():
            return self._reason
        if runner.cancelled():
            return "stopped"
        error = runner.exception()
        return f"{type(error).__name__}: {error}" if error else "the hub closed the connection"

    async def authenticated(self, message: Any) -> None:
        result = getattr(message, "result", None)
        error = getattr(message, "error", None)
        if not error and isinstance(result, dict) and result.get("success"):
            self.authentications += 1
            self._on_authenticated()
            log.info("push websocket: authenticated for CAD server %s", self.server_id)
            return
        reason = error or (result.get("error") if isinstance(result, dict) else result) or "no reason given"
        self._refuse(f"Sonoran refused authenticatev2: {reason}")

    async def hub_error(self, message: Any) -> None:
        """An error the hub answered to one of our invocations (the only one we make authenticates)."""
        self._refuse(f"the hub answered an error: {getattr(message, 'error', None) or 'no reason given'}")

    def _refuse(self, reason: str) -> None:
        if not self._refused.is_set():
            self._reason = reason
            self._refused.set()
