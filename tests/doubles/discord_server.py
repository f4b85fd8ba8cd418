"""The fake Discord as a real HTTP server on 127.0.0.1, for bots that run in another process.

It serves the same `FakeDiscord` handlers (the same strict limits, the same nonce
de-duplication) as the in-process aioresponses double; a child process points discord.py at it
(`tests/doubles/offline_run.py` with FAKE_DISCORD_URL). The messages live here, in the test process, so
they outlive a bot that is killed with SIGKILL and started again.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import yarl
from aiohttp import web
from aioresponses import CallbackResult

from .discord_fakes import API, FakeDiscord
from .loopback import serve

Handler = Callable[..., CallbackResult | Awaitable[CallbackResult]]


class DiscordServer:
    def __init__(self, fake: FakeDiscord, gateway_url: str) -> None:
        self.fake = fake
        self.gateway_url = gateway_url
        self.url = ""
        self._runner: web.AppRunner | None = None
        # called with the method and path of each request once it was handled, before the answer
        # goes back: a test can kill the bot right there, after Discord did the work
        self.before_reply: Callable[[str, str], Awaitable[None]] | None = None

    async def start(self) -> str:
        app = web.Application()
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/api/v10/users/@me", self.fake._me),
            ("GET", "/api/v10/oauth2/applications/@me", self.fake._application),
            ("GET", "/api/v10/gateway/bot", self._gateway),
            ("POST", "/api/v10/channels/{channel}/messages", self.fake.post_message),
            ("PATCH", "/api/v10/channels/{channel}/messages/{message}", self.fake.edit_message),
            ("PUT", "/api/v10/applications/{app}/commands", self.fake._sync),
            ("PUT", "/api/v10/applications/{app}/guilds/{guild}/commands", self.fake._sync),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._adapt(handler))
        self._runner, port = await serve(app)
        self.url = f"http://127.0.0.1:{port}/api/v10"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _gateway(self, url: Any, **kw: Any) -> CallbackResult:
        limits = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return CallbackResult(payload={"url": self.gateway_url, "shards": 1, "session_start_limit": limits})

    def _adapt(self, handler: Handler) -> Callable[[web.Request], Any]:
        async def route(request: web.Request) -> web.Response:
            # the handlers read the path the way they see it under aioresponses
            url = yarl.URL(API + request.path.removeprefix("/api/v10"))
            body = await request.text()
            result = handler(url, data=body or None, headers=dict(request.headers))
            if inspect.isawaitable(result):
                result = await result
            if self.before_reply is not None:
                await self.before_reply(request.method, request.path)
            raw = result.body if result.body else json.dumps(result.payload)
            payload = raw.encode() if isinstance(raw, str) else raw
            # bytes, not text: discord.py reads JSON only under exactly `application/json`, no charset
            return web.Response(
                status=result.status, body=payload, content_type="application/json", headers=result.headers
            )

        return route
