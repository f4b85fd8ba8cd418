"""The push listener under a hostile sender, over real loopback sockets: the caps refuse the
attacker, not the CAD. A bare listener (its `deliver` records what it is given) for the transport;
the whole bot for events that must be posted while an attacker holds connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import bot.intake.listener as listener_module
import bot.sonoran.events as events_module
from bot import ConfigError, load_settings
from bot.intake.keyscan import leading_key
from bot.intake.listener import MAX_BODY, READ_CHUNK, PushListener, PushRoute, Resolve, one_route
from bot.preflight import push_checks
from bot.sonoran.events import Envelope, Event

from .conftest import BotFactory
from .doubles.discord_fakes import FakeDiscord
from .doubles.fake_cad import API_KEY
from .doubles.loopback import free_port
from .helpers import make_settings
from .test_feed import feed_of, posts
from .test_operations import wait_for
from .test_push import CHANNEL, FEEDS, call_911, push_settings

KEY = "the-Community-Key-0123"
PATH = "/sonorancad/event"
ROOT = Path(__file__).resolve().parent.parent


class Bare:
    """A listener of its own, on 127.0.0.1, and a sender that speaks raw HTTP to it."""

    def __init__(self, listener: PushListener, delivered: list[list[Event]]) -> None:
        self.listener = listener
        self.delivered = delivered
        self.port = listener.bound_port

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def exchange(self, data: bytes, *, seconds: float = 10) -> bytes:
        """Sends `data` on a fresh connection and returns all that comes back until it is closed."""
        reader, writer = await self.connect()
        try:
            writer.write(data)
            return await asyncio.wait_for(_read_all(reader), seconds)
        finally:
            writer.close()

    async def post(self, body: bytes, **headers: str) -> int:
        """POSTs `body` on a fresh connection, as the CAD does; the status."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"http://127.0.0.1:{self.port}{PATH}"
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status


def bare_route(deliver: Callable[[int, list[Event]], Awaitable[None]]) -> Resolve:
    """Every request to PATH (and PATH/<server>) taken for one community keyed KEY, whatever it holds."""
    return one_route(
        PushRoute(
            label="bare",
            api_key=KEY,
            server_id=1,
            routes=lambda _server: True,
            takes=lambda _server, _event: True,
            deliver=deliver,
        )
    )


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read()
    except ConnectionError:  # reset: nothing more came
        return b""


def event(call_id: int, *, key: str = KEY, pad: int = 0) -> bytes:
    data: dict[str, Any] = {"call": call_911(call_id)}
    if pad:
        data["pad"] = "x" * pad
    return json.dumps({"key": key, "type": "EVENT_911", "data": data}).encode()


def request(body: bytes, *, length: int | None = None, keep_alive: bool = False) -> bytes:
    head = f"POST {PATH} HTTP/1.1\r\nHost: bot\r\nContent-Length: {len(body) if length is None else length}\r\n"
    if not keep_alive:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


BareFactory = Callable[..., Awaitable[Bare]]


@pytest.fixture
async def bare() -> AsyncIterator[BareFactory]:
    listeners: list[PushListener] = []

    async def start(allow_from: tuple[str, ...] = (), clock: Callable[[], float] = time.monotonic) -> Bare:
        delivered: list[list[Event]] = []

        async def deliver(_server: int, events: list[Event]) -> None:
            delivered.append(events)

        listener = PushListener(
            host="127.0.0.1",
            port=0,
            path=PATH,
            resolve=bare_route(deliver),
            allow_from=allow_from,
            clock=clock,
        )
        await listener.start()
        listeners.append(listener)
        return Bare(listener, delivered)

    yield start
    for listener in listeners:
        await listener.stop()


async def still_open(reader: asyncio.StreamReader, seconds: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    except ConnectionError:
        return False
    return False


async def closed(reader: asyncio.StreamReader, seconds: float = 5) -> bool:
    """Closed by the listener within `seconds` (generous: a cap or timeout acts at once or in ms)."""
    return await asyncio.wait_for(_read_all(reader), seconds) == b""


# --- the connection cap -------------------------------------------------------------------------------
async def test_at_the_cap_the_oldest_connection_without_a_request_makes_room(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(listener_module, "PRESSED_FIRST_REQUEST", 30.0)  # only the cap acts here
    side = await bare()
    idle = [await side.connect() for _ in range(3)]
    slow_headers = await side.connect()
    slow_headers[1].write(f"POST {PATH} HTTP/1.1\r\nHost: bot\r\n".encode())  # and nothing more
    fifth = await side.connect()  # the 5th: the oldest, idle[0], is closed to make room
    assert await closed(idle[0][0])
    assert await side.post(event(1)) == 200  # the 6th, the CAD's: closes idle[1], and is answered
    assert await closed(idle[1][0])
    assert await still_open(idle[2][0]) and await still_open(slow_headers[0]) and await still_open(fifth[0])
    assert side.listener.stats.evicted == 2 and side.listener.stats.refused_full == 0
    assert len(side.delivered) == 1


async def test_a_body_that_trickles_is_closed_to_make_room_without_a_traceback(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(listener_module, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(listener_module, "PRESSED_FIRST_REQUEST", 30.0)
    side = await bare()
    with caplog.at_level(logging.DEBUG):
        trickle = await side.connect()
        trickle[1].write(request(b'{"key": "' + b"k" * 100, length=MAX_BODY))
        await wait_for(lambda: side.listener.held_bytes > 0)
        idle = [await side.connect() for _ in range(2)]  # the second closes the trickle, the oldest
        assert await closed(trickle[0])
        await wait_for(lambda: side.listener.held_bytes == 0)
        assert await side.post(event(1)) == 200  # and this one closes idle[0]
        assert await closed(idle[0][0]) and await still_open(idle[1][0])
    assert side.listener.stats.evicted == 2
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_connection_that_proved_itself_is_not_closed_to_make_room(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(listener_module, "PRESSED_FIRST_REQUEST", 30.0)
    side = await bare()
    reader, writer = await side.connect()  # a forwarder that keeps its connection alive
    writer.write(request(event(1), keep_alive=True))
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await reader.readexactly(2)  # "ok"
    others = [await side.connect() for _ in range(4)]  # two over the cap: the two oldest bare ones go
    assert await closed(others[0][0]) and await closed(others[1][0])
    writer.write(request(event(2)))
    assert (await asyncio.wait_for(_read_all(reader), 5)).startswith(b"HTTP/1.1 200")
    assert len(side.delivered) == 2


async def test_when_every_connection_proved_itself_the_newcomer_is_closed(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(listener_module, "MAX_CONNECTIONS", 2)
    side = await bare()
    kept = []
    for call_id in (1, 2):
        reader, writer = await side.connect()
        writer.write(request(event(call_id), keep_alive=True))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        kept.append((reader, writer))
    newcomer, _ = await side.connect()
    assert await closed(newcomer)
    assert side.listener.stats.refused_full == 1
    assert len([r for r in caplog.records if "connections are open" in r.getMessage()]) == 1


async def test_past_half_the_cap_a_first_request_has_less_time(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "MAX_CONNECTIONS", 8)
    monkeypatch.setattr(listener_module, "IDLE_TIMEOUT", 60.0)
    monkeypatch.setattr(listener_module, "PRESSED_FIRST_REQUEST", 0.2)
    side = await bare()
    calm = [await side.connect() for _ in range(4)]  # half the cap: the usual minute each
    assert all([await still_open(reader, 0.6) for reader, _ in calm])
    pressed = await side.connect()  # the 5th: past half, so it and those older than 0.2 s are closed
    for reader, _ in calm:
        assert await closed(reader)
    assert await closed(pressed[0])
    assert side.listener.stats.expired >= 5 and side.listener.stats.evicted == 0
    assert await side.post(event(1)) == 200


# --- bytes held -------------------------------------------------------------------------------------
async def test_the_memory_cap_counts_bytes_read_not_bytes_declared(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "MAX_HELD_BYTES", 512 * 1024)
    side = await bare()
    trickles = []
    for _ in range(8):  # 8 MiB declared, 8 KiB sent
        reader, writer = await side.connect()
        writer.write(request(b'{"key": "' + b"k" * 1024, length=MAX_BODY))
        trickles.append((reader, writer))
    await wait_for(lambda: side.listener.held_bytes == 8 * (1024 + 9))
    assert await side.post(event(1)) == 200  # declared bytes no longer keep the CAD out
    assert side.listener.stats.over_memory == 0
    for _, writer in trickles:
        writer.close()
    await wait_for(lambda: side.listener.held_bytes == 0)  # released when the senders go


async def test_past_the_memory_cap_big_bodies_are_refused_and_small_ones_taken(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(listener_module, "MAX_HELD_BYTES", 256 * 1024)
    side = await bare()
    head = request(b'{"key": "' + b"k" * 200 * 1024, length=MAX_BODY)  # 200 KiB of 1 MiB, no end sent
    big = [await side.connect()]
    big[0][1].write(head)
    await wait_for(lambda: side.listener.held_bytes > 200 * 1024)  # all of the first is held
    big.append(await side.connect())
    big[1][1].write(head)  # together over the cap: the second is refused
    answer = await asyncio.wait_for(_read_all(big[1][0]), 10)
    assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in answer
    assert await still_open(big[0][0])
    assert await side.post(event(1)) == 200  # an event of a few KiB: never behind big bodies
    assert side.listener.stats.over_memory == 1
    assert side.listener.stats.peak_held_bytes <= 256 * 1024 + listener_module.SMALL_BODY
    assert len([r for r in caplog.records if "big ones answered 503" in r.getMessage()]) == 1
    for _, writer in big:
        writer.close()


async def test_one_connection_holds_at_most_one_body_of_1_mib(bare: BareFactory) -> None:
    side = await bare()
    reader, writer = await side.connect()  # chunked: no length declared; 1 MiB and 10 bytes sent
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    for chunk in [b"x" * 65536] * 16 + [b"y" * 10]:
        writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        await writer.drain()
    answer = await asyncio.wait_for(_read_all(reader), 10)
    assert answer.startswith(b"HTTP/1.1 413")
    assert side.listener.stats.peak_held_bytes <= MAX_BODY + READ_CHUNK
    await wait_for(lambda: side.listener.held_bytes == 0)
    writer.close()


# --- allow_from ------------------------------------------------------------------------------------
async def test_a_peer_outside_allow_from_is_closed_before_anything_is_read(
    bare: BareFactory, caplog: pytest.LogCaptureFixture
) -> None:
    side = await bare(("10.0.0.0/8", "2001:db8::/32"))
    silent, _ = await side.connect()
    assert await closed(silent)  # closed though it sent nothing (the first request has 15 s)
    for _ in range(3):
        assert await side.exchange(request(event(1))) == b""  # no answer at all: nothing was read
    assert side.delivered == [] and side.listener.stats.outside_allow_from == 4
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "outside push.allow_from" in lines[0] and "127.0.0.1" in lines[0]
    assert side.listener.stats.wrong_key == 0 and side.listener.stats.malformed == 0


async def test_a_peer_inside_allow_from_is_served(bare: BareFactory) -> None:
    side = await bare(("127.0.0.0/8",))
    assert await side.post(event(1)) == 200
    assert len(side.delivered) == 1 and side.listener.stats.outside_allow_from == 0


def test_allow_from_takes_ipv4_ipv6_and_mapped_addresses() -> None:
    listener = PushListener(
        host="::",
        port=0,
        path=PATH,
        resolve=bare_route(lambda _server, _events: asyncio.sleep(0)),
        allow_from=("203.0.113.0/24", "2001:db8::/32"),
    )
    assert listener.allows("203.0.113.9") and listener.allows("::ffff:203.0.113.9")
    assert listener.allows("2001:db8::1") and listener.allows("fe80::1%eth0") is False
    assert not listener.allows("198.51.100.1") and not listener.allows("?") and not listener.allows(None)


CONFIG = '[discord]\ntoken = "t"\n[sonoran]\ncommunity_id = "c"\napi_key = "k"\n[push]\n'


def test_allow_from_is_checked_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG + 'allow_from = ["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"]\n')
    assert load_settings(path, {}).push.allow_from == ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"]
    for bad, words in [("10.0.0.300/8", "does not appear to be"), ("10.1.2.3/8", "did you mean 10.0.0.0/8?")]:
        path.write_text(CONFIG + f'allow_from = ["10.0.0.0/8", "{bad}"]\n')
        with pytest.raises(ConfigError) as info:
            load_settings(path, {})
        assert f"push.allow_from: '{bad}' is not a network in CIDR form" in str(info.value)
        assert words in str(info.value)


def test_the_example_config_takes_connections_from_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text((ROOT / "config.example.toml").read_text())
    assert load_settings(path, {}).push.allow_from == []


def test_check_says_where_connections_are_taken_from() -> None:
    anywhere = make_settings("http://127.0.0.1:9", 2, push=push_settings(port=free_port()))
    assert "taken from anywhere (push.allow_from is empty)" in push_checks(anywhere)[0].detail
    only = make_settings("http://127.0.0.1:9", 2, push=push_settings(port=free_port(), allow_from=["10.0.0.0/8"]))
    assert "taken from 10.0.0.0/8 only (push.allow_from)" in push_checks(only)[0].detail


# --- the key -----------------------------------------------------------------------------------------
async def test_a_wrong_key_in_a_big_body_is_refused_from_its_first_bytes(
    bare: BareFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    side = await bare()
    parsed: list[int] = []
    read_envelope = events_module.read_envelope

    def counted(body: bytes) -> Envelope:
        parsed.append(len(body))
        return read_envelope(body)

    monkeypatch.setattr(listener_module, "read_envelope", counted)
    big = event(1, key="not-the-key", pad=MAX_BODY - 1000)
    assert len(big) < MAX_BODY
    assert await side.post(big) == 401
    assert parsed == [] and side.listener.stats.wrong_key_early == 1  # never parsed whole
    assert await side.post(event(2, key=KEY.upper(), pad=MAX_BODY - 1000)) == 200  # the key's case: as before
    key_last = json.dumps({"type": "EVENT_911", "data": {"call": call_911(3), "pad": "x" * 100_000}, "key": KEY})
    assert await side.post(key_last.encode()) == 200  # the key after the data: the whole body tells
    wrong_last = key_last.replace(KEY, "nope")
    assert await side.post(wrong_last.encode()) == 401
    assert len(parsed) == 3 and [len(events) for events in side.delivered] == [1, 1]
    assert await side.post(b'{"key": "nope", "type": "EVENT_911"}') == 400  # small bodies: as before


def test_the_leading_key_is_read_as_json_reads_it() -> None:
    assert leading_key(b' {"key" : "a\\u0042c", "type": "E", "data": {"x": [1, 2') == "aBc"
    assert leading_key(b'{"type": "EVENT_911", "key": "k", "data"') == "k"
    assert leading_key(b'{"data": {"call": {"callId": 1, "description": "long and cut') is None
    assert leading_key(b'{"key": 5, "data": {}}') is None  # not text: the whole body says 400
    assert leading_key(b'{"key": "\\ud800"}') is None  # a lone surrogate: 400 too
    assert leading_key(b'[{"key": "k"}]') is None and leading_key(b"\xef\xbb\xbf{") is None
    assert leading_key('{"key": "ké"}'.encode()[:11]) is None  # a character cut by the prefix's end


# --- malformed HTTP ----------------------------------------------------------------------------------
MALFORMED = [
    b"POST /sonorancad/event HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /sonorancad/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST /sonorancad/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    b"POST /sonorancad/event HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /sonorancad/event HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(60)) + b"\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    b"GET / HTTP/1.1 and more\r\n\r\n",
    b"POST /sonorancad/event HTTP/9.9\r\n\r\n",
]


async def test_malformed_http_is_400_without_a_traceback_and_one_line(
    bare: BareFactory, caplog: pytest.LogCaptureFixture
) -> None:
    side = await bare()
    with caplog.at_level(logging.DEBUG):
        for data in MALFORMED * 2:
            answer = await side.exchange(data)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0], answer[:80]
        _, writer = await side.connect()  # a sender gone in the middle of its body
        writer.write(request(b'{"key": "', length=1000))
        await wait_for(lambda: side.listener.held_bytes > 0)
        writer.transport.abort()
        await wait_for(lambda: side.listener.held_bytes == 0)
        assert await side.post(event(1)) == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]
    states = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(states) == 1 and "malformed HTTP" in states[0], states
    assert side.listener.stats.malformed == 2 * len(MALFORMED)


async def test_an_episode_of_malformed_http_is_one_line_when_it_starts_and_one_when_it_has_ended(
    bare: BareFactory, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    side = await bare(clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.intake.listener"):
        for data in MALFORMED:
            await side.exchange(data)
        now[0] += 30
        await side.exchange(MALFORMED[0])  # within the minute: the same episode
        now[0] += listener_module.EPISODE_QUIET
        assert await side.post(event(1)) == 200  # a quiet minute later: the episode has ended
        await side.exchange(MALFORMED[0])  # and a new one starts
    lines = [r.getMessage() for r in caplog.records if "malformed HTTP" in r.getMessage()]
    assert len(lines) == 3, lines
    assert lines[0].startswith("push: answering malformed HTTP 400 and closing (the first from 127.0.0.1")
    count = len(MALFORMED) + 1
    assert lines[1] == f"push: no more answering malformed HTTP 400 and closing for 60 s ({count} in that episode)"
    assert lines[2].startswith("push: answering malformed HTTP 400 and closing")


# --- the CAD beside an attacker ----------------------------------------------------------------------
async def test_every_event_is_acknowledged_and_posted_while_an_attacker_holds_connections(
    make_bot: BotFactory, discord_api: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "MAX_CONNECTIONS", 32)
    monkeypatch.setattr(listener_module, "MAX_HELD_BYTES", 256 * 1024)
    bot = await make_bot(feeds=FEEDS, push=push_settings())
    listener = bot.intake.listener if bot.intake else None
    assert listener is not None
    port = listener.bound_port
    stop = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def attacker() -> None:
        # bare connections and 1 MiB bodies that trickle, ever more: 40 a second, so that an
        # honest request would have to last 0.8 s for 32 newer ones to make it the oldest
        index = 0
        while not stop.is_set():
            for _ in range(4):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    if index % 3 == 0:
                        writer.write(request(b'{"key": "' + b"k" * 90_000, length=MAX_BODY))
                    held.append(writer)
                index += 1
            await asyncio.sleep(0.1)

    attack = asyncio.create_task(attacker())
    await wait_for(lambda: len(held) >= 48)
    statuses = []
    connector = aiohttp.TCPConnector(force_close=True)  # a fresh connection per event, as the CAD
    async with aiohttp.ClientSession(connector=connector) as session:
        for call_id in range(1, 21):
            body = json.dumps({"key": API_KEY, "type": "EVENT_911", "data": {"call": call_911(call_id)}})
            async with session.post(f"http://127.0.0.1:{port}{PATH}", data=body) as response:
                statuses.append(response.status)
    stop.set()
    await attack
    for writer in held:
        writer.close()
    await feed_of(bot).settled()
    assert statuses == [200] * 20
    shown = {title for body in posts(discord_api, CHANNEL) for title in _titles(body)}
    assert {f"🚨 EMERGENCY 911 call #{i}" for i in range(1, 21)} <= shown
    assert listener.stats.evicted > 0


def _titles(body: dict[str, Any]) -> list[str]:
    return [str(embed.get("title")) for embed in body.get("embeds") or []]
