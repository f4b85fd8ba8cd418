"""A SignalR hub that speaks as Sonoran's `/apiWsHub` does, over the JSON protocol, served by the
fake CAD at its own address (`FakeCad.hub`), as Sonoran serves it beside its API:
negotiate, the handshake, `authenticatev2(communityId, apiKey, serverId)` answered with
`{success, error, count}`, and the client method `pushEvent` sent to authenticated sessions.

It refuses what the hub refuses: a wrong key or community, an unknown server id, and
`pushEvent` only ever goes to a session authenticated for that server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

SEPARATOR = "\x1e"


@dataclass
class Session:
    socket: web.WebSocketResponse
    server_id: int | None = None
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)  # hub methods the client invoked


class FakeHub:
    def __init__(self, *, community_id: str, api_key: str, servers: tuple[int, ...] = (1,)) -> None:
        self.community_id = community_id
        self.api_key = api_key
        self.servers = servers
        self.sessions: list[Session] = []
        self.authentications: list[tuple[str, str, int]] = []  # every authenticatev2, in order
        self.hub_error: str | None = None  # answer authenticatev2 with this hub error instead of a result
        self._ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/apiWsHub/negotiate":
            return await self._negotiate(request)
        if request.method == "GET" and request.path == "/apiWsHub":
            return await self._socket(request)
        return web.Response(status=404)

    async def drop_connections(self) -> None:
        """The hub restarts: every session is closed and forgotten, authentication included."""
        for session in list(self.sessions):
            await session.socket.close()
        self.sessions.clear()

    async def push(self, server_id: int, payload: Any) -> int:
        """Sends `pushEvent(payload)` to every session authenticated for `server_id`; returns how many."""
        message = json.dumps({"type": 1, "target": "pushEvent", "arguments": [payload]}) + SEPARATOR
        sent = 0
        for session in self.sessions:
            if session.server_id == server_id and not session.socket.closed:
                await session.socket.send_str(message)
                sent += 1
        return sent

    def open_sessions(self) -> int:
        return len([s for s in self.sessions if not s.socket.closed])

    async def wait_for_authentications(self, count: int, seconds: float = 10) -> None:
        """Until `count` open sessions are authenticated."""
        deadline = time.monotonic() + seconds
        while len([s for s in self.sessions if s.server_id is not None]) < count:
            assert time.monotonic() < deadline, "no authenticated session"
            await asyncio.sleep(0.02)

    async def _negotiate(self, request: web.Request) -> web.Response:
        token = f"connection-{next(self._ids)}"
        return web.json_response(
            {
                "connectionId": token,
                "connectionToken": token,
                "negotiateVersion": 1,
                "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}],
            }
        )

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        session = Session(socket)
        self.sessions.append(session)
        handshaken = False
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                break
            for frame in filter(None, message.data.split(SEPARATOR)):
                data = json.loads(frame)
                if not handshaken:
                    handshaken = True
                    await socket.send_str("{}" + SEPARATOR)
                    continue
                if data.get("type") == 1:
                    await self._invoke(session, data)
        if session in self.sessions:
            self.sessions.remove(session)
        return socket

    async def _invoke(self, session: Session, data: dict[str, Any]) -> None:
        target, arguments = data.get("target", ""), data.get("arguments") or []
        session.calls.append((target, arguments))
        if target != "authenticatev2":
            result: dict[str, Any] = {"success": False, "error": "Unauthenticated. Call authenticate first."}
        else:
            community, key, server_id = [*arguments, None, None, None][:3]
            self.authentications.append((str(community), str(key), int(server_id or 0)))
            if community != self.community_id or str(key).lower() != self.api_key.lower():
                result = {"success": False, "error": "INVALID API KEY", "count": 0}
            elif server_id not in self.servers:
                result = {"success": False, "error": "INVALID SERVER ID", "count": 0}
            else:
                session.server_id = int(server_id)
                result = {"success": True, "error": "", "count": 1}
        if data.get("invocationId"):
            outcome = {"error": self.hub_error} if self.hub_error else {"result": result}
            reply = {"type": 3, "invocationId": data["invocationId"], **outcome}
            await session.socket.send_str(json.dumps(reply) + SEPARATOR)
