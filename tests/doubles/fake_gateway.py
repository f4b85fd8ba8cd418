"""A minimal Discord gateway on 127.0.0.1: HELLO, IDENTIFY -> READY (+ a GUILD_CREATE per guild),
heartbeats, presence updates recorded. Enough for `bot.start()` and `python -m bot check` to run
for real. Sharded as Discord shards: an IDENTIFY with `"shard": [i, n]` is given only the guilds
with (id >> 22) % n == i, and its READY says the shard."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from .discord_fakes import APP_ID, BOT_ID, GUILD_ID, user_payload
from .loopback import serve

EVERYONE_BASE = 0x400 | 0x800 | 0x4000 | 0x10000  # view channel, send, embed links, read history
SEND_MESSAGES = 0x800
EMBED_LINKS = 0x4000


def text_channel(
    channel_id: int, name: str = "dispatch-feed", deny: int = 0, *, guild_id: str = GUILD_ID
) -> dict[str, Any]:
    overwrites = [{"id": guild_id, "type": 0, "allow": "0", "deny": str(deny)}] if deny else []
    return {
        "id": str(channel_id),
        "type": 0,
        "name": name,
        "position": 0,
        "guild_id": guild_id,
        "permission_overwrites": overwrites,
        "nsfw": False,
        "parent_id": None,
    }


def role(role_id: int, name: str = "Dispatch", *, mentionable: bool = False) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": "0",
        "position": 1,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": mentionable,
        "flags": 0,
    }


def guild_payload(
    channels: list[dict[str, Any]],
    everyone_permissions: int = EVERYONE_BASE,
    roles: list[dict[str, Any]] | None = None,
    *,
    guild_id: str = GUILD_ID,
    name: str = "Test RP",
) -> dict[str, Any]:
    return {
        "id": guild_id,
        "name": name,
        "owner_id": "1",
        "unavailable": False,
        "member_count": 2,
        "roles": [
            {
                "id": guild_id,
                "name": "@everyone",
                "permissions": str(everyone_permissions),
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            },
            *(roles or []),
        ],
        "channels": [{**channel, "guild_id": guild_id} for channel in channels],
        "threads": [],
        "emojis": [],
        "stickers": [],
        "features": [],
        "voice_states": [],
        "presences": [],
        "large": False,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "mfa_level": 0,
        "verification_level": 0,
        "explicit_content_filter": 0,
        "default_message_notifications": 0,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "system_channel_flags": 0,
        "nsfw_level": 0,
        "members": [
            {
                "user": {**user_payload(BOT_ID, "dispatch-bot"), "bot": True},
                "roles": [],
                "flags": 0,
                "joined_at": "2024-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
            }
        ],
    }


def shard_of(guild_id: int | str, shard_count: int) -> int:
    """The shard that carries a guild: Discord's rule."""
    return (int(guild_id) >> 22) % shard_count


class FakeGateway:
    """`FakeGateway(guild_payload(...))` for one guild, `FakeGateway(guilds=[...])` for several
    (each connection gets those of its shard); `shards_identified` lists each IDENTIFY's
    (shard, count), (0, 1) for one without a shard."""

    def __init__(self, guild: dict[str, Any] | None = None, *, guilds: list[dict[str, Any]] | None = None) -> None:
        if guild is not None and guilds is not None:
            raise ValueError("give one guild or a list of guilds, not both")
        self.guilds = [guild] if guild is not None else list(guilds or [])
        self.received: list[dict[str, Any]] = []
        self.shards_identified: list[tuple[int, int]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.identified = asyncio.Event()

    @property
    def guild(self) -> dict[str, Any] | None:
        return self.guilds[0] if self.guilds else None

    @property
    def presences(self) -> list[dict[str, Any]]:
        return [m["d"] for m in self.received if m.get("op") == 3]

    def guilds_of(self, shard: int, shard_count: int) -> list[dict[str, Any]]:
        return [guild for guild in self.guilds if shard_of(guild["id"], shard_count) == shard]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._ws)
        self._runner, port = await serve(app)
        self.url = f"ws://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seq = 0

        async def dispatch(event: str, data: Any) -> None:
            nonlocal seq
            seq += 1
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": seq, "d": data}))

        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 30000}}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            payload = json.loads(msg.data)
            self.received.append(payload)
            if payload["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif payload["op"] == 2:
                shard = payload["d"].get("shard")
                shard_id, shard_count = (int(shard[0]), int(shard[1])) if shard else (0, 1)
                self.shards_identified.append((shard_id, shard_count))
                self.identified.set()
                guilds = self.guilds_of(shard_id, shard_count)
                ready: dict[str, Any] = {
                    "v": 10,
                    "user": {**user_payload(BOT_ID, "dispatch-bot"), "bot": True},
                    "guilds": [{"id": guild["id"], "unavailable": True} for guild in guilds],
                    "session_id": f"s{len(self.shards_identified)}",
                    "resume_gateway_url": self.url,
                    "application": {"id": APP_ID, "flags": 0},
                }
                if shard:
                    ready["shard"] = [shard_id, shard_count]
                await dispatch("READY", ready)
                for guild in guilds:
                    await dispatch("GUILD_CREATE", guild)
        return ws
