"""The real-time feed on a quiet day and on a bad one. Every latency runs from the moment a push
event is sent to the bot's listener (over loopback HTTP) to the moment the Discord POST carrying
its call leaves the bot, so it includes the listener, planning and storing (the 200 waits for the
store) and delivery.

1. Quiet: 1,000 EVENT_911s, 100 at a time and one at a time, Discord answered in-process
   (aioresponses: the bot's share) and over loopback HTTP (end to end).
2. A failing channel beside healthy ones: 2 and 20 feed channels, one of which answers 500 to every
   write, then 429 with `retry_after` 60. The healthy channels' latencies.
3. A poll's 10 edits pending in a channel that keeps Discord's bucket (5 writes per 5 s): a new
   call's POST, its place in the channel's writes, and its latency.
4. A flood at the caps: as many 100-event requests as 8 senders can make for 10 s. Resident memory
   before and after, what was taken and what was refused.
5. Panic alerts: EVENT_UNIT_PANIC sent -> the alert's POST, and (a panic set through the API, which
   sends no event) the units poll's request -> the alert's POST; one alert and one board as sent.

The poll path's figure is printed beside (`bench.latency`, at a 0.5 s interval; production polls
every 20 s or more). The sender runs in the bot's process and competes with it for the CPU.

    python -m bench.push [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
import sys
import tempfile
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import discord.http

from bench import latency
from bench._common import ROOT, feed_of, logged_in_bot, percentile, report, rss_mib
from bot.core import DispatchBot
from bot.services import open_services
from tests.doubles.discord_fakes import ChannelFault, FakeDiscord
from tests.doubles.discord_server import DiscordServer
from tests.doubles.fake_cad import API_KEY, FakeCad
from tests.doubles.fake_gateway import FakeGateway, guild_payload, text_channel
from tests.doubles.loopback import free_port
from tests.helpers import make_settings

CHANNEL = 4242
EVENTS = 1_000
CONCURRENT = 100
PATH = "/sonorancad/event"
CALL_ID = re.compile(r"call #(\d+)")
FAILING_EVENTS = 200  # per phase (500s, then the long 429), 10 a second
FLOOD_SECONDS = 10.0
FLOOD_SENDERS = 8
Made = tuple[float, str, list[int]]  # a message Discord made: (monotonic time, channel id, call ids)


def event(*call_ids: int) -> bytes:
    calls = [
        {"call": {"callId": i, "isEmergency": True, "caller": "Bench", "location": "Route 68", "description": "x"}}
        for i in call_ids
    ]
    return json.dumps({"key": API_KEY, "type": "EVENT_911", "data": calls[0] if len(calls) == 1 else calls}).encode()


class Clock:
    """When each call's event was sent, and how long until each channel's POST carried it."""

    def __init__(self, channels: set[str] | None = None) -> None:
        self.sent: dict[int, float] = {}
        self.latencies: dict[str, list[float]] = {}
        self._channels = channels
        self._posted = asyncio.Event()

    def on_post(self, message: dict[str, Any]) -> None:
        now = time.perf_counter()
        channel = str(message.get("channel_id"))
        if self._channels is not None and channel not in self._channels:
            return
        for embed in message.get("embeds") or []:
            match = CALL_ID.search(str(embed.get("title", "")))
            if match and int(match.group(1)) in self.sent:
                self.latencies.setdefault(channel, []).append((now - self.sent[int(match.group(1))]) * 1e3)
                self._posted.set()

    async def until(self, count: int) -> None:
        """Returns once `count` latencies are in."""
        while len(self.all()) < count:
            self._posted.clear()
            await self._posted.wait()

    def all(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]


def listener_url(bot: DispatchBot) -> str:
    listener = bot.intake.listener if bot.intake else None
    assert listener is not None
    return f"http://127.0.0.1:{listener.bound_port}{PATH}"


async def send(session: aiohttp.ClientSession, url: str, clock: Clock, call_id: int) -> None:
    clock.sent[call_id] = time.perf_counter()
    async with session.post(url, data=event(call_id)) as response:
        assert response.status == 200, await response.text()


# --- 1. quiet ----------------------------------------------------------------------------------------
async def fire(bot: DispatchBot, fake: FakeDiscord, *, concurrent: int = CONCURRENT) -> list[float]:
    clock = Clock()
    fake.on_post = clock.on_post
    url = listener_url(bot)
    async with aiohttp.ClientSession() as session:
        for wave in range(EVENTS // concurrent):
            first = 10_000 + wave * concurrent
            await asyncio.gather(*(send(session, url, clock, i) for i in range(first, first + concurrent)))
            await feed_of(bot).settled()
    assert len(clock.all()) == EVENTS, f"{len(clock.all())} of {EVENTS} events reached Discord"
    return clock.all()


def settings(channels: int = 1) -> dict[str, Any]:
    return {
        "feeds": [{"server_id": 1, "channel_id": CHANNEL + i} for i in range(channels)],
        "push": {"enabled": True, "host": "127.0.0.1", "port": free_port(), "path": PATH},
    }


async def in_process(cad_url: str, workdir: Path, concurrent: int) -> list[float]:
    async with logged_in_bot(cad_url, workdir / f"a{concurrent}.sqlite3", **settings()) as (bot, fake):
        return await fire(bot, fake, concurrent=concurrent)


@contextlib.asynccontextmanager
async def discord_over_http(channels: int = 1) -> AsyncIterator[FakeDiscord]:
    gateway = FakeGateway(guild_payload([text_channel(CHANNEL + i) for i in range(channels)]))
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


@contextlib.asynccontextmanager
async def bot_over_http(cad_url: str, state: Path, channels: int = 1) -> AsyncIterator[tuple[DispatchBot, FakeDiscord]]:
    async with discord_over_http(channels) as fake:
        full = make_settings(cad_url, 2, state_path=state, **settings(channels))
        async with open_services(full) as services:
            bot = DispatchBot(full, services, autostart_feed=False)
            await bot.login("bench-token")
            try:
                yield bot, fake
            finally:
                await bot.close()


async def end_to_end(cad_url: str, workdir: Path) -> list[float]:
    async with bot_over_http(cad_url, workdir / "b.sqlite3") as (bot, fake):
        return await fire(bot, fake)


# --- 2. a failing channel beside healthy ones ---------------------------------------------------------
async def beside_a_failing_channel(bot: DispatchBot, fake: FakeDiscord, channels: int) -> list[float]:
    """The healthy channels' latencies while channel 0 answers 500, then 429 for 60 s."""
    failing = str(CHANNEL)
    clock = Clock({str(CHANNEL + i) for i in range(1, channels)})
    fake.on_post = clock.on_post
    url = listener_url(bot)
    next_id = 50_000
    async with aiohttp.ClientSession() as session:
        for fault in (
            ChannelFault(500, 0, "500: Internal Server Error"),
            ChannelFault(429, 0, "You are being rate limited.", retry_after=60),
        ):
            fake.channel_faults[failing] = fault
            for _ in range(FAILING_EVENTS):
                await send(session, url, clock, next_id)
                next_id += 1
                await asyncio.sleep(0.1)
    expected = FAILING_EVENTS * 2 * (channels - 1)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            await clock.until(expected)
    assert len(clock.all()) == expected, f"{len(clock.all())} of {expected} healthy posts reached Discord"
    return clock.all()


async def failing_in_process(cad_url: str, workdir: Path, channels: int) -> list[float]:
    state = workdir / f"f{channels}.sqlite3"
    async with logged_in_bot(cad_url, state, **settings(channels)) as (bot, fake):
        return await beside_a_failing_channel(bot, fake, channels)


class DiscordProcess:
    """`bench.discord_server` in a process of its own: `made` holds the messages it made as they
    come, (monotonic time, channel id, call ids); `fault` changes how a channel answers."""

    def __init__(self) -> None:
        self.url = ""
        self.made: list[Made] = []
        self._arrived = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DiscordProcess:
        command = [sys.executable, "-m", "bench.discord_server"]
        self._process = await asyncio.create_subprocess_exec(*command, stdin=PIPE, stdout=PIPE, cwd=ROOT)
        assert self._process.stdout is not None
        self.url = (await self._process.stdout.readline()).decode().strip()
        self._reader = asyncio.create_task(self._read(self._process.stdout))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.kill()
            await self._process.wait()
        if self._reader is not None:
            self._reader.cancel()

    def fault(self, channel: int, status: int, retry_after: float | None = None) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(f"fault {channel} {status} {retry_after or ''}\n".encode())

    async def until(self, done: Callable[[list[Made]], bool]) -> None:
        while not done(self.made):
            self._arrived.clear()
            await self._arrived.wait()

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        while line := (await stdout.readline()).decode().split():
            ids = [int(i) for i in line[2].split(",")] if len(line) > 2 else []
            self.made.append((float(line[0]), line[1], ids))
            self._arrived.set()


async def failing_in_another_process(cad_url: str, workdir: Path, channels: int) -> list[float]:
    """As `beside_a_failing_channel`, with Discord in a process of its own: event sent -> POST made."""
    async with DiscordProcess() as discord_api:
        base = discord.http.Route.BASE
        discord.http.Route.BASE = discord_api.url
        try:
            full = make_settings(cad_url, 2, state_path=workdir / f"g{channels}.sqlite3", **settings(channels))
            async with open_services(full) as services:
                bot = DispatchBot(full, services, autostart_feed=False)
                await bot.login("bench-token")
                try:
                    sent: dict[int, float] = {}
                    async with aiohttp.ClientSession() as session:
                        listener = listener_url(bot)
                        next_id = 60_000
                        for status, retry_after in ((500, None), (429, 60.0)):
                            discord_api.fault(CHANNEL, status, retry_after)
                            for _ in range(FAILING_EVENTS):
                                sent[next_id] = time.monotonic()
                                async with session.post(listener, data=event(next_id)) as response:
                                    assert response.status == 200
                                next_id += 1
                                await asyncio.sleep(0.1)
                    expected = FAILING_EVENTS * 2 * (channels - 1)
                    async with asyncio.timeout(60):
                        await discord_api.until(lambda made: _healthy_posts(made) >= expected)
                finally:
                    await bot.close()
        finally:
            discord.http.Route.BASE = base
    made = discord_api.made
    return [(at - sent[i]) * 1e3 for at, channel, ids in made if channel != str(CHANNEL) for i in ids if i in sent]


# --- 3. a new call behind a poll's edits ----------------------------------------------------------------
async def new_call_behind_edits(cad: FakeCad, workdir: Path) -> tuple[int, float]:
    """Its place among the channel's writes after the edits began (0: first), and its latency (ms)."""
    async with logged_in_bot(cad.url, workdir / "e.sqlite3", **settings()) as (bot, fake):
        fake.channel_bucket = (5, 5.0)  # Discord's bucket for a channel's messages
        engine = feed_of(bot)
        calls = []
        for _ in range(10):  # ten calls in ten messages
            calls.append(cad.add_911())
            await engine.poll_once()
        for call_id in calls:
            cad.servers[1].emergency[call_id]["description"] = "Now armed"
        await asyncio.sleep(5.0)  # a fresh bucket
        fake.writes.clear()
        clock = Clock()
        fake.on_post = clock.on_post
        await engine.cycle()  # ten edits to make
        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as session:
            await send(session, listener_url(bot), clock, 77_777)
        await clock.until(1)
        place = [method for method, _, _ in fake.writes].index("POST")
        await engine.settled()
        return place, clock.all()[0]


# --- 4. a flood at the caps -------------------------------------------------------------------------------
async def flood(cad_url: str, workdir: Path) -> dict[str, Any]:
    async with logged_in_bot(cad_url, workdir / "h.sqlite3", **settings()) as (bot, fake):
        url = listener_url(bot)
        answers: dict[int, int] = {}
        taken = 0
        gc.collect()
        before = rss_mib()
        deadline = time.monotonic() + FLOOD_SECONDS
        next_id = 1_000_000

        async def sender(session: aiohttp.ClientSession) -> None:
            nonlocal next_id, taken
            while time.monotonic() < deadline:
                first, next_id = next_id, next_id + 100
                async with session.post(url, data=event(*range(first, first + 100))) as response:
                    answers[response.status] = answers.get(response.status, 0) + 1
                    if response.status == 200:
                        taken += 100

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(sender(session) for _ in range(FLOOD_SENDERS)))
        peak = rss_mib()
        await feed_of(bot).settled()
        gc.collect()
        return {
            "requests": sum(answers.values()),
            "answers": {str(status): count for status, count in sorted(answers.items())},
            "events_taken": taken,
            "rss_before_mib": round(before, 1),
            "rss_after_flood_mib": round(peak, 1),
            "rss_after_delivery_mib": round(rss_mib(), 1),
            "messages_posted": fake.channel_posts,
        }


# --- 5. panic alerts ------------------------------------------------------------------------------------
ALERT_CHANNEL = 5151
BOARD_CHANNEL = 5152
PANIC_UNITS = 60
POLL_SAMPLES = 20
IDENT = re.compile(r"identifier #(\d+)")


async def panic_alerts(cad: FakeCad, workdir: Path) -> dict[str, Any]:
    """An alert's latency by push (EVENT_UNIT_PANIC sent -> the alert's POST leaving the bot) and by
    poll (the units poll's request leaving -> the alert's POST: the CAD sends no event for a panic set
    through its API); and one alert and one board as they were sent to Discord."""
    for n in range(PANIC_UNITS):
        cad.add_unit(70_000 + n, f"1A-{n:02}", f"Officer {n}", "LSPD", location="Route 68")
    now = [0.0]
    units_settings: dict[str, Any] = {
        "alerts": [{"server_id": 1, "channel_id": ALERT_CHANNEL, "ping_role_id": 999}],
        "boards": [{"server_id": 1, "channel_id": BOARD_CHANNEL}],
    }
    state = workdir / "p.sqlite3"
    async with logged_in_bot(cad.url, state, clock=lambda: now[0], **settings(), **units_settings) as (bot, fake):
        units = feed_of(bot).units
        now[0] += 60
        await units.poll_once()  # the roster, whole
        posted: dict[int, float] = {}
        arrived = asyncio.Event()

        def on_post(message: dict[str, Any]) -> None:
            for embed in message.get("embeds") or []:
                match = IDENT.search(str((embed.get("footer") or {}).get("text", "")))
                if match and str(message.get("channel_id")) == str(ALERT_CHANNEL):
                    posted[int(match.group(1))] = time.perf_counter()
                    arrived.set()

        fake.on_post = on_post
        by_push: list[float] = []
        url = listener_url(bot)
        async with aiohttp.ClientSession() as session:
            for n in range(PANIC_UNITS - POLL_SAMPLES):
                ident = 70_000 + n
                body = {"key": API_KEY, "type": "EVENT_UNIT_PANIC", "data": {"identIds": [ident], "isPanic": True}}
                sent = time.perf_counter()
                async with session.post(url, data=json.dumps(body)) as response:
                    assert response.status == 200
                while ident not in posted:
                    arrived.clear()
                    await arrived.wait()
                by_push.append((posted[ident] - sent) * 1e3)
        by_poll: list[float] = []
        for n in range(PANIC_UNITS - POLL_SAMPLES, PANIC_UNITS):
            ident = 70_000 + n
            cad.set_panic(ident)  # through the API: no event
            now[0] += 60
            asked = time.perf_counter()
            await units.poll_once()
            by_poll.append((posted[ident] - asked) * 1e3)
        await feed_of(bot).settled()
        alert = fake.sent("POST", rf"/channels/{ALERT_CHANNEL}/messages$")[0]
        board = fake.sent("POST", rf"/channels/{BOARD_CHANNEL}/messages$")[0]
    return {
        "alert_by_push_p50_ms": _p(by_push, 50),
        "alert_by_push_p99_ms": _p(by_push, 99),
        "alert_by_poll_p50_ms": _p(by_poll, 50),
        "alert_by_poll_p99_ms": _p(by_poll, 99),
        "recorded_alert": {k: alert[k] for k in ("content", "embeds", "components", "allowed_mentions", "nonce")},
        "recorded_board": {k: board[k] for k in ("embeds", "allowed_mentions", "nonce")},
    }


def _healthy_posts(made: list[Made]) -> int:
    return sum(len(ids) for _, channel, ids in made if channel != str(CHANNEL))


def _p(values: list[float], q: float) -> float:
    return round(percentile(values, q), 2)


async def main() -> None:
    cad = FakeCad()
    url = await cad.start()
    figures: dict[str, Any] = {"events": EVENTS, "concurrent": CONCURRENT}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        share = await in_process(url, work, CONCURRENT)
        single = await in_process(url, work, 1)
        whole = await end_to_end(url, work)
        figures |= {
            "bot_share_p50_ms": _p(share, 50),
            "bot_share_p99_ms": _p(share, 99),
            "one_at_a_time_p50_ms": _p(single, 50),
            "one_at_a_time_p99_ms": _p(single, 99),
            "end_to_end_p50_ms": _p(whole, 50),
            "end_to_end_p99_ms": _p(whole, 99),
        }
        for channels in (2, 20):
            healthy = await failing_in_process(url, work, channels)
            loopback = await failing_in_another_process(url, work, channels)
            figures |= {
                f"failing_beside_{channels}_share_p50_ms": _p(healthy, 50),
                f"failing_beside_{channels}_share_p99_ms": _p(healthy, 99),
                f"failing_beside_{channels}_end_to_end_p50_ms": _p(loopback, 50),
                f"failing_beside_{channels}_end_to_end_p99_ms": _p(loopback, 99),
            }
        place, behind = await new_call_behind_edits(cad, work)
        figures |= {"new_call_place_among_writes": place, "new_call_behind_edits_ms": round(behind, 1)}
        figures["flood"] = await flood(url, work)
        figures |= await panic_alerts(cad, work)
    await cad.close()
    poll, _ = await latency.measure(samples=30)
    figures |= {"poll_path_p50_ms": round(percentile(poll, 50), 1), "poll_path_p99_ms": round(percentile(poll, 99), 1)}
    report(figures, _lines(figures))


def _lines(f: dict[str, Any]) -> list[str]:
    def pair(prefix: str) -> str:
        return f"p50 {f[prefix + '_p50_ms']:.1f} ms, p99 {f[prefix + '_p99_ms']:.1f} ms"

    flood = f["flood"]
    lines = [
        f"push event sent -> Discord POST, {EVENTS} events",
        f"  bot's share (Discord in-process), {CONCURRENT} at a time:  {pair('bot_share')}",
        f"  bot's share, one event at a time:               {pair('one_at_a_time')}",
        f"  end to end (Discord over loopback):             {pair('end_to_end')}",
        f"healthy channels beside one answering 500, then 429 retry_after 60 ({FAILING_EVENTS} events each)",
    ]
    for channels in (2, 20):
        lines += [
            f"  {channels:2d} channels, Discord in its own process:   {pair(f'failing_beside_{channels}_end_to_end')}",
            f"  {channels:2d} channels, Discord in-process (its CPU too): {pair(f'failing_beside_{channels}_share')}",
        ]
    lines += [
        "a new call while a poll's 10 edits wait on Discord's bucket (5 per 5 s)",
        f"  its POST was write #{f['new_call_place_among_writes'] + 1} of the channel, "
        f"{f['new_call_behind_edits_ms']:.0f} ms after its event",
        f"a flood for {FLOOD_SECONDS:.0f} s, {FLOOD_SENDERS} senders of 100-event requests",
        f"  {flood['requests']} requests {flood['answers']}, {flood['events_taken']} events taken",
        f"  RSS {flood['rss_before_mib']} MiB -> {flood['rss_after_flood_mib']} MiB after the flood, "
        f"{flood['rss_after_delivery_mib']} MiB once delivered ({flood['messages_posted']} messages)",
        f"the poll path, at a 0.5 s interval: p50 {f['poll_path_p50_ms']:.0f} ms, p99 {f['poll_path_p99_ms']:.0f} ms "
        "(at the default 20 s: about 10 s and 20 s)",
        f"panic alerts, Discord in-process, {PANIC_UNITS - POLL_SAMPLES} by push and {POLL_SAMPLES} by poll",
        f"  EVENT_UNIT_PANIC sent -> the alert's POST:       {pair('alert_by_push')}",
        f"  units poll's request -> the alert's POST:        {pair('alert_by_poll')} "
        "(plus the wait for the poll: up to units.poll_seconds, 60 s)",
        "  recorded alert: " + json.dumps(f["recorded_alert"], ensure_ascii=False),
        "  recorded board: " + json.dumps(f["recorded_board"], ensure_ascii=False),
    ]
    return lines


if __name__ == "__main__":
    asyncio.run(main())
