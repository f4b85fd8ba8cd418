"""From a push event's acceptance by the bot's listener to the Discord POST leaving the bot: 1,000
EVENT_911s, sent 100 at a time (and one at a time). Twice: with Discord answered in-process (aioresponses: the bot's own
share) and with Discord served over loopback HTTP (end to end). The poll path's figure is printed
beside it (`bench.latency`, at a 0.5 s interval; production polls every 20 s or more).

The sender runs in the bot's process: its HTTP client work competes with the bot for the CPU.

    python -m bench.push [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord.http

from bench import latency
from bench._common import feed_of, logged_in_bot, percentile, report
from bot.core import DispatchBot
from bot.services import open_services
from tests.discord_fakes import FakeDiscord
from tests.discord_server import DiscordServer
from tests.fake_cad import API_KEY, FakeCad
from tests.fake_gateway import FakeGateway, guild_payload, text_channel
from tests.helpers import make_settings
from tests.loopback import free_port

CHANNEL = 4242
EVENTS = 1_000
CONCURRENT = 100
PATH = "/sonorancad/event"
CALL_ID = re.compile(r"call #(\d+)")


def event(call_id: int) -> bytes:
    call = {"callId": call_id, "isEmergency": True, "caller": "Bench", "location": "Route 68", "description": "x"}
    return json.dumps({"key": API_KEY, "type": "EVENT_911", "data": {"call": call}}).encode()


async def fire(bot: DispatchBot, fake: FakeDiscord, *, concurrent: int = CONCURRENT) -> list[float]:
    """Milliseconds from each event's acceptance by the listener to the Discord POST that carried
    its call, `concurrent` events at a time."""
    sent_at: dict[int, float] = {}
    latencies: list[float] = []

    def on_accepted(server_id: int, events: list[Any]) -> None:
        now = time.perf_counter()
        for item in events:
            sent_at[item.call.call_id] = now

    def on_post(message: dict[str, Any]) -> None:
        now = time.perf_counter()
        for embed in message.get("embeds") or []:
            match = CALL_ID.search(str(embed.get("title", "")))
            if match and int(match.group(1)) in sent_at:
                latencies.append((now - sent_at.pop(int(match.group(1)))) * 1e3)

    fake.on_post = on_post
    feed = feed_of(bot)
    assert feed.push_listener is not None
    feed.push_listener.on_accepted = on_accepted
    url = f"http://127.0.0.1:{feed.push_listener.bound_port}{PATH}"
    async with aiohttp.ClientSession() as session:

        async def one(call_id: int) -> None:
            async with session.post(url, data=event(call_id)) as response:
                assert response.status == 200, await response.text()

        for wave in range(EVENTS // concurrent):
            first = 10_000 + wave * concurrent
            await asyncio.gather(*(one(call_id) for call_id in range(first, first + concurrent)))
            await feed.events_settled()
    assert len(latencies) == EVENTS, f"{len(latencies)} of {EVENTS} events reached Discord"
    return latencies


def settings(cad_url: str) -> dict[str, Any]:
    return {
        "feeds": [{"server_id": 1, "channel_id": CHANNEL}],
        "push": {"enabled": True, "host": "127.0.0.1", "port": free_port(), "path": PATH},
    }


async def in_process(cad_url: str, workdir: Path, concurrent: int) -> list[float]:
    async with logged_in_bot(cad_url, workdir / f"a{concurrent}.sqlite3", **settings(cad_url)) as (bot, fake):
        return await fire(bot, fake, concurrent=concurrent)


@contextlib.asynccontextmanager
async def discord_over_http() -> AsyncIterator[FakeDiscord]:
    gateway = FakeGateway(guild_payload([text_channel(CHANNEL)]))
    fake = FakeDiscord(None)  # type: ignore[arg-type]  # served by DiscordServer, not aioresponses
    server = DiscordServer(fake, await gateway.start())
    base = discord.http.Route.BASE
    discord.http.Route.BASE = await server.start()
    try:
        yield fake
    finally:
        discord.http.Route.BASE = base
        await server.close()
        await gateway.close()


async def end_to_end(cad_url: str, workdir: Path) -> list[float]:
    async with discord_over_http() as fake:
        full = make_settings(cad_url, 2, state_path=workdir / "b.sqlite3", **settings(cad_url))
        async with open_services(full) as services:
            bot = DispatchBot(full, services, autostart_feed=False)
            await bot.login("bench-token")
            try:
                return await fire(bot, fake)
            finally:
                await bot.close()


async def main() -> None:
    cad = FakeCad()
    url = await cad.start()
    with tempfile.TemporaryDirectory() as tmp:
        share = await in_process(url, Path(tmp), CONCURRENT)
        single = await in_process(url, Path(tmp), 1)
        whole = await end_to_end(url, Path(tmp))
    await cad.close()
    poll, _ = await latency.measure(samples=30)
    figures = {
        "events": EVENTS,
        "concurrent": CONCURRENT,
        "bot_share_p50_ms": round(percentile(share, 50), 2),
        "bot_share_p99_ms": round(percentile(share, 99), 2),
        "one_at_a_time_p50_ms": round(percentile(single, 50), 2),
        "one_at_a_time_p99_ms": round(percentile(single, 99), 2),
        "end_to_end_p50_ms": round(percentile(whole, 50), 2),
        "end_to_end_p99_ms": round(percentile(whole, 99), 2),
        "poll_path_p50_ms": round(percentile(poll, 50), 1),
        "poll_path_p99_ms": round(percentile(poll, 99), 1),
    }
    report(
        figures,
        [
            f"push event -> Discord POST, {EVENTS} events, {CONCURRENT} at a time",
            f"  bot's share (Discord in-process):      p50 {figures['bot_share_p50_ms']:.1f} ms, "
            f"p99 {figures['bot_share_p99_ms']:.1f} ms",
            f"  bot's share, one event at a time:      p50 {figures['one_at_a_time_p50_ms']:.1f} ms, "
            f"p99 {figures['one_at_a_time_p99_ms']:.1f} ms",
            f"  end to end (Discord over loopback):    p50 {figures['end_to_end_p50_ms']:.1f} ms, "
            f"p99 {figures['end_to_end_p99_ms']:.1f} ms",
            f"  the poll path, at a 0.5 s interval:    p50 {figures['poll_path_p50_ms']:.0f} ms, "
            f"p99 {figures['poll_path_p99_ms']:.0f} ms (at the default 20 s: about 10 s and 20 s)",
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
