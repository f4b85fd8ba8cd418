"""Opt-in (`push.websocket = true`): the bot's own session on Sonoran's SignalR hub, one per feed
server, so that push events arrive without opening a port.

The protocol is pysignalr's (an optional extra: `pip install "sonoran-dispatch-bot[websocket]"`),
not a hand-written one. After every (re)connect the session calls
`authenticatev2(communityId, apiKey, serverId)`, as Sonoran's FiveM resource does; the hub then
calls the client method `pushEvent` with the same `{key, type, data}` envelope as the HTTP push,
as a JSON string or an object, which goes through the listener's own checks (`PushListener.answer`).

Sonoran does not document what happens when the game server holds a session for the same server
id: the bot may take the game server's events. `check` and the README say so, and advise a
dedicated server id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from .push import PushListener, PushListenerError
from .sonoran.models import ServerId

log = logging.getLogger(__name__)

HUB_PATH = "/apiWsHub"


class WebsocketUnavailable(PushListenerError):
    """pysignalr is not installed."""


class PushSessions:
    def __init__(
        self, listener: PushListener, *, api_url: str, community_id: str, api_key: str, server_ids: list[ServerId]
    ) -> None:
        try:
            from pysignalr.client import SignalRClient
        except ImportError:
            raise WebsocketUnavailable(
                'push.websocket = true needs pysignalr: pip install "sonoran-dispatch-bot[websocket]" '
                "(or set push.websocket = false)"
            ) from None
        self._client_class = SignalRClient
        self.listener = listener
        self.url = api_url.rstrip("/") + HUB_PATH
        self._community = community_id
        self._key = api_key
        self.server_ids = server_ids
        self._tasks: list[asyncio.Task[None]] = []
        self.authenticated: dict[ServerId, int] = {}  # successful authentications per server (reconnects count)

    def __repr__(self) -> str:
        return f"PushSessions({self.url!r}, servers={self.server_ids})"

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
        delay = 2.0
        while True:
            client = self._client_class(self.url)

            async def authenticate(client: Any = client, server_id: ServerId = server_id) -> None:
                arguments: Any = [self._community, self._key, server_id]
                await client.send("authenticatev2", arguments, on_invocation=self._authenticated(server_id))

            async def push_event(arguments: list[Any], server_id: ServerId = server_id) -> None:
                for payload in arguments:
                    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                    answer = self.listener.answer(body, server_id, "signalr")
                    if answer.status != 200:
                        log.warning("push websocket, server %s: an event was refused (%s)", server_id, answer.text)

            client.on_open(authenticate)  # on every (re)connect: the hub forgets us with the connection
            client.on("pushEvent", push_event)
            try:
                await client.run()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the hub is down or refused us: try again, slower each time
                log.warning("push websocket, server %s: %s; reconnecting in %.0f s", server_id, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def _authenticated(self, server_id: ServerId) -> Any:
        async def done(message: Any) -> None:
            result = getattr(message, "result", None)
            error = getattr(message, "error", None)
            if isinstance(result, dict) and result.get("success"):
                self.authenticated[server_id] = self.authenticated.get(server_id, 0) + 1
                log.info("push websocket: authenticated for CAD server %s", server_id)
            else:
                reason = error or (result.get("error") if isinstance(result, dict) else result)
                log.error("push websocket: Sonoran refused authenticatev2 for server %s: %s", server_id, reason)

        return done
