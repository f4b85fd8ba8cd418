"""Discord for `python -m bot demo` without a token: the few REST routes the bot's feed uses
(log in, post a message, edit it, delete it), served on 127.0.0.1, and every post and edit printed to the
terminal as it would look in the channel: the title, the text and fields, and the buttons' labels.

It answers as Discord does for what the feed sends. It is no full double: no gateway, so no slash
commands or clicks (a demo with a token shows those in a real server).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import textwrap
import time
from typing import Any, TextIO

from aiohttp import web

BOT_ID = "100000000000000001"
APP_ID = "100000000000000002"
_ids = itertools.count(900_000_000_000_000_001)


def _user() -> dict[str, Any]:
    return {"id": BOT_ID, "username": "dispatch-bot", "discriminator": "0", "avatar": None, "bot": True, "flags": 0}


_TIMESTAMP = re.compile(r"<t:(\d+)(?::[tTdDfFR])?>")


_ESCAPED = re.compile(r"\\([^\w\s])")


def _plain(text: str) -> str:
    """As a reader sees it: Discord's timestamp markup as local time (`<t:1796395590:R>`), bold
    markers gone, and markdown escapes (`\\#1003`) shown as the character they keep."""
    text = _TIMESTAMP.sub(lambda m: time.strftime("%H:%M:%S", time.localtime(int(m.group(1)))), text)
    return _ESCAPED.sub(r"\1", text.replace("**", ""))


def message_payload(
    message_id: str, channel_id: str, author: dict[str, Any], content: str = "", embeds: Any = None, **extra: Any
) -> dict[str, Any]:
    """A message object as Discord sends it back (what discord.py needs to build a Message)."""
    return {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": embeds or [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": [],
        **extra,
    }


def render(message: dict[str, Any], *, edited: bool) -> str:
    """A message as the terminal shows it: one block per embed, then the buttons' labels."""
    head = f"[{time.strftime('%H:%M:%S')}] {'edited' if edited else 'posted'} message {message['id']}"
    lines = [head + (f": {message['content']}" if message.get("content") else "")]
    for embed in message.get("embeds") or []:
        lines.append(f"  | {embed.get('title', '')}")
        for text in (embed.get("description") or "").splitlines():
            lines.extend(f"  |   {part}" for part in textwrap.wrap(text, 96) or [""])
        for item in embed.get("fields") or []:
            value = " ".join(str(item.get("value", "")).split())
            lines.append(f"  |   {item.get('name')}: {textwrap.shorten(value, 90)}")
        footer = (embed.get("footer") or {}).get("text")
        if footer:
            lines.append(f"  |   ({footer})")
    labels = [
        f"[{c.get('label') or c.get('placeholder') or '?'}{' (off)' if c.get('disabled') else ''}]"
        for row in message.get("components") or []
        for c in row.get("components") or []
    ]
    if labels:
        lines.append("  " + " ".join(labels))
    return _plain("\n".join(lines))


class TerminalDiscord:
    """`await start()` returns the API base URL to point discord.py at (`discord.http.Route.BASE`)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.messages: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.edits = 0
        self.closed = asyncio.Event()  # the terminal stopped reading (`demo | head`)
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_post("/api/v10/channels/{channel}/messages", self._post)
        app.router.add_patch("/api/v10/channels/{channel}/messages/{message}", self._edit)
        app.router.add_delete("/api/v10/channels/{channel}/messages/{message}", self._delete)
        app.router.add_put("/api/v10/applications/{app}/commands", self._commands)
        app.router.add_put("/api/v10/applications/{app}/guilds/{guild}/commands", self._commands)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/api/v10"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _me(self, request: web.Request) -> web.Response:
        return _json(_user())

    async def _application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": APP_ID,
                "name": "dispatch-bot demo",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": "demo",
                "flags": 0,
                "owner": _user(),
            }
        )

    async def _commands(self, request: web.Request) -> web.Response:
        return _json([])

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        nonce = body.get("nonce")
        known = next((m for m in self.messages.values() if nonce and m.get("nonce") == nonce), None)
        if known is not None:  # Discord's de-duplication by nonce: the first message, unchanged
            return _json(known)
        message = message_payload(
            str(next(_ids)),
            request.match_info["channel"],
            _user(),
            body.get("content") or "",
            body.get("embeds"),
            components=body.get("components") or [],
            nonce=nonce,
        )
        self.messages[message["id"]] = message
        self.posts += 1
        self._show(render(message, edited=False))
        return _json(message)

    def _show(self, text: str) -> None:
        try:
            print(text, file=self.out, flush=True)
        except BrokenPipeError:  # the reader has seen enough: the demo ends
            self.closed.set()

    async def _edit(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["message"])
        if message is None:
            return _json({"code": 10008, "message": "Unknown Message"}, status=404)
        body = await request.json()
        message.update({key: body[key] for key in ("content", "embeds", "components") if key in body})
        self.edits += 1
        self._show(render(message, edited=True))
        return _json(message)

    async def _delete(self, request: web.Request) -> web.Response:
        message = self.messages.pop(request.match_info["message"], None)
        if message is None:
            return _json({"code": 10008, "message": "Unknown Message"}, status=404)
        self._show(f"[{time.strftime('%H:%M:%S')}] deleted message {message['id']}")
        return web.Response(status=204)


def _json(payload: Any, *, status: int = 200) -> web.Response:
    # bytes under exactly `application/json`: discord.py reads JSON only then
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json")
