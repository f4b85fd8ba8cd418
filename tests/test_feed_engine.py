"""The feed engine on a bad day: a channel where Discord is slow or failing beside a healthy one,
new posts ahead of a poll's edits, the truthful end label, events out of order, and one poisoned
call on each path (poll, push, render, store). The bot is logged in to the strict Discord double,
events arrive over loopback HTTP, the CAD is the fake CAD, the state a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest

import bot.delivery.writes as writes_module
import bot.feed.sender as sender_module
import bot.intake.listener as listener_module
from bot.core import DispatchBot
from bot.posts import Post

from .conftest import BotFactory
from .doubles.discord_fakes import ChannelFault, FakeDiscord
from .doubles.fake_cad import API_KEY, FakeCad
from .test_feed import feed_of
from .test_feed_faults import shown_titles
from .test_operations import wait_for
from .test_push import Pusher, call_911, dispatch_call, push_settings

SLOW = 3001  # a channel where Discord is slow, or fails
HEALTHY = 3002
TWO_CHANNELS = [{"server_id": 1, "channel_id": SLOW}, {"server_id": 1, "channel_id": HEALTHY}]
EMERGENCY_ONLY = [{"server_id": 1, "channel_id": SLOW}]  # no dispatch calls: `dispatch = false`
DISPATCH_ONLY = [{"server_id": 1, "channel_id": SLOW, "calls": [], "dispatch": True}]


@pytest.fixture
def api_version() -> int:
    return 2  # the engine does not depend on the CAD's API version


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def messages(discord_api: FakeDiscord, channel: int) -> list[dict[str, Any]]:
    return discord_api.channel_messages(channel)


def event(kind: str, data: Any) -> str:
    return json.dumps({"key": API_KEY, "type": kind, "data": data})


# --- one writer per channel ----------------------------------------------------------------------------
async def test_a_stalled_channel_never_delays_a_healthy_one(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    bot = await make_bot(feeds=TWO_CHANNELS, push=push_settings())
    engine = feed_of(bot)
    pusher = Pusher(bot, session)
    gate = discord_api.gates[str(SLOW)] = asyncio.Event()  # Discord does not answer there for now
    first = cad.add_911()
    await engine.cycle()  # plans and stores, and never waits on Discord
    await wait_for(lambda: len(messages(discord_api, HEALTHY)) == 1)
    second = cad.add_911()  # and its event comes at once
    assert await pusher.raw(event("EVENT_911", {"call": call_911(second)})) == (200, "ok")
    await wait_for(lambda: len(messages(discord_api, HEALTHY)) == 2)
    assert messages(discord_api, SLOW) == []  # still waiting on its first post
    gate.set()
    await engine.poll_once()
    for channel in (SLOW, HEALTHY):
        titles = shown_titles(discord_api, channel)
        assert titles == [f"🚨 EMERGENCY 911 call #{first}", f"🚨 EMERGENCY 911 call #{second}"]


async def test_a_channel_answering_500_then_a_long_429_holds_only_itself(
    make_bot: BotFactory,
    cad: FakeCad,
    discord_api: FakeDiscord,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(writes_module, "WRITE_TIMEOUT", 0.5)  # discord.py retries a 5xx for 25 s
    caplog.set_level(logging.INFO, logger="bot.feed")
    bot = await make_bot(feeds=TWO_CHANNELS, push=push_settings())
    engine = feed_of(bot)
    pusher = Pusher(bot, session)
    discord_api.channel_faults[str(SLOW)] = ChannelFault(500, 0, "500: Internal Server Error")
    cad.add_911()
    await engine.poll_once()
    await engine.poll_once()  # a poll retries at once what failed
    assert len(messages(discord_api, HEALTHY)) == 1 and messages(discord_api, SLOW) == []
    discord_api.channel_faults[str(SLOW)] = ChannelFault(429, 0, "You are being rate limited.", retry_after=60)
    assert await pusher.raw(event("EVENT_911", {"call": call_911(90_002)})) == (200, "ok")
    await wait_for(lambda: len(messages(discord_api, HEALTHY)) == 2)
    await engine.settled()
    tried = len([w for w in discord_api.writes if w[1] == str(SLOW)])
    await engine.poll_once()  # Discord said 60 s: a poll does not cut that short
    assert len([w for w in discord_api.writes if w[1] == str(SLOW)]) == tried
    assert messages(discord_api, SLOW) == [] and len(messages(discord_api, HEALTHY)) == 2
    said = [r.getMessage() for r in caplog.records if f"channel {SLOW}:" in r.getMessage()]
    assert len(said) == 2, said  # one line per change: failing, then rate-limited
    assert "in time" in said[0] and "60 s" in said[1]
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_new_call_is_posted_before_a_polls_pending_edits(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    cad.limits.pop("get_calls")  # twelve polls in a moment: this test is about order, not the budget
    bot = await make_bot(feeds=EMERGENCY_ONLY)
    engine = feed_of(bot)
    calls = []
    for _ in range(10):  # ten messages, one call each
        calls.append(cad.add_911())
        await engine.poll_once()
    assert len(messages(discord_api, SLOW)) == 10
    gate = discord_api.gates[str(SLOW)] = asyncio.Event()
    for call_id in calls:
        cad.servers[1].emergency[call_id]["description"] = "Now armed"
    await engine.cycle()  # ten edits to make; the first is on its way
    await asyncio.sleep(0.05)
    new = cad.add_911()
    await engine.cycle()
    discord_api.writes.clear()
    gate.set()
    await engine.settled()
    order = [method for method, channel, _ in discord_api.writes if channel == str(SLOW)]
    assert order == ["PATCH", "POST", *["PATCH"] * 9], order
    assert shown_titles(discord_api, SLOW)[-1] == f"🚨 EMERGENCY 911 call #{new}"


# --- the truthful end label, and order ---------------------------------------------------------------
async def test_a_dispatch_event_marks_the_911_call_answered_on_a_feed_without_dispatch(
    make_bot: BotFactory, discord_api: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    bot = await make_bot(feeds=EMERGENCY_ONLY, push=push_settings())
    pusher = Pusher(bot, session)
    await pusher.send("EVENT_911", {"call": call_911(701)})
    await pusher.send("EVENT_DISPATCH_NEW", {"dispatch": dispatch_call(51, metaData={"origin911": "701"})})
    await pusher.send("EVENT_REMOVE_911", {"callIds": [701]})
    assert shown_titles(discord_api, SLOW) == ["EMERGENCY 911 call #701 (answered)"]
    # the other order: the removal first, then the dispatch call that answered it
    await pusher.send("EVENT_911", {"call": call_911(702)})
    await pusher.send("EVENT_REMOVE_911", {"callIds": [702]})
    assert shown_titles(discord_api, SLOW)[-1] == "EMERGENCY 911 call #702 (removed)"
    await pusher.send("EVENT_DISPATCH_NEW", {"dispatch": dispatch_call(52, metaData={"origin911": 702})})
    assert shown_titles(discord_api, SLOW)[-1] == "EMERGENCY 911 call #702 (answered)"


async def test_a_later_poll_relabels_a_removed_call_it_shows_answered_even_after_a_restart(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    bot = await make_bot(feeds=EMERGENCY_ONLY, push=push_settings())
    pusher = Pusher(bot, session)
    await pusher.send("EVENT_911", {"call": call_911(703)})
    await pusher.send("EVENT_REMOVE_911", {"callIds": [703]})
    assert shown_titles(discord_api, SLOW) == ["EMERGENCY 911 call #703 (removed)"]
    await bot.close()
    again = await make_bot(feeds=EMERGENCY_ONLY)
    cad.add_dispatch("From 911", metaData={"origin911": "703"})
    await feed_of(again).poll_once()
    assert shown_titles(discord_api, SLOW) == ["EMERGENCY 911 call #703 (answered)"]


async def test_a_removal_that_comes_before_its_call_leaves_nothing_active(
    make_bot: BotFactory, discord_api: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    bot = await make_bot(feeds=EMERGENCY_ONLY, push=push_settings())
    pusher = Pusher(bot, session)
    assert await pusher.send("EVENT_REMOVE_911", {"callIds": [704]}) == (200, "ok")
    assert await pusher.send("EVENT_911", {"call": call_911(704)}) == (200, "ok")
    assert messages(discord_api, SLOW) == []


async def test_an_older_event_that_comes_late_changes_nothing(
    make_bot: BotFactory, discord_api: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    bot = await make_bot(feeds=DISPATCH_ONLY, push=push_settings())
    pusher = Pusher(bot, session)
    newer = dispatch_call(53, "Shots fired, suspect fled", updated="2026-12-04T10:05:00.000Z")
    older = dispatch_call(53, "Shots fired", updated="2026-12-04T10:00:00.000Z")
    await pusher.send("EVENT_DISPATCH_EDIT", {"dispatch": newer})
    await pusher.send("EVENT_DISPATCH_NEW", {"dispatch": older})
    (message,) = messages(discord_api, SLOW)
    assert "suspect fled" in message["embeds"][0]["title"]


# --- one bad call costs one call ---------------------------------------------------------------------
def _poisoned_calls(cad: FakeCad) -> list[int]:
    """Calls a CAD might send: an unreadable id, null and junk fields; the good ones' ids."""
    good = [cad.add_911("Before"), cad.add_911("Coordinates", metadata={"x": 10**400, "y": 1e308})]
    emergency = cad.servers[1].emergency
    emergency[2**63] = {"callId": 2**63, "isEmergency": True, "caller": "Too big", "location": "", "description": ""}
    null_flag = cad.add_911("Null flag")
    emergency[null_flag]["isEmergency"] = None
    good += [null_flag, cad.add_911("After")]
    return good


async def test_a_poisoned_call_in_a_poll_costs_that_call_only(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(feeds=EMERGENCY_ONLY)
    good = _poisoned_calls(cad)
    await feed_of(bot).poll_once()
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, SLOW) == [f"🚨 EMERGENCY 911 call #{i}" for i in good]
    left_out = [r for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 1 and "9223372036854775808" in left_out[0].getMessage()  # once, not per poll
    later = cad.add_911("Next cycle")
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, SLOW)[-1] == f"🚨 EMERGENCY 911 call #{later}"


async def test_a_poisoned_dispatch_call_in_a_poll_costs_that_call_only(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=DISPATCH_ONLY)
    first = cad.add_dispatch("Empty primary", primary="")
    cad.servers[1].active[2**64] = {"callId": 2**64, "title": "Too big"}
    second = cad.add_dispatch("Notes of junk", notes=["not a note", {"content": "a real one"}])
    await feed_of(bot).poll_once()
    titles = shown_titles(discord_api, SLOW)
    assert len(titles) == 2 and f"#{first}" in titles[0] and f"#{second}" in titles[1]


async def test_a_poisoned_event_in_a_burst_costs_that_event_only(
    make_bot: BotFactory, discord_api: FakeDiscord, session: aiohttp.ClientSession
) -> None:
    bot = await make_bot(feeds=EMERGENCY_ONLY, push=push_settings())
    pusher = Pusher(bot, session)
    burst = [
        {"call": call_911(705)},
        {"call": {**call_911(0), "callId": 2**63}},
        {"call": {**call_911(706), "isEmergency": None, "metaData": {"x": 10**400}}},
    ]
    assert await pusher.send("EVENT_911", burst) == (200, "ok")
    assert shown_titles(discord_api, SLOW) == ["🚨 EMERGENCY 911 call #705", "🚨 EMERGENCY 911 call #706"]


async def test_a_call_that_cannot_be_rendered_is_a_stand_in_and_the_rest_is_posted(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(feeds=EMERGENCY_ONLY)
    before, poisoned, after = cad.add_911(), cad.add_911("Poison"), cad.add_911()
    real = sender_module._render

    def render(post: Post, *names: Any) -> Any:
        if post.call_id == poisoned:
            raise OverflowError("cannot convert float infinity to integer")
        return real(post, *names)

    monkeypatch.setattr(sender_module, "_render", render)
    await feed_of(bot).poll_once()
    titles = shown_titles(discord_api, SLOW)
    assert titles[0] == f"🚨 EMERGENCY 911 call #{before}" and titles[2] == f"🚨 EMERGENCY 911 call #{after}"
    assert f"#{poisoned}" in titles[1] and "EMERGENCY" not in titles[1]  # the stand-in
    later = cad.add_911()
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, SLOW)[-1] == f"🚨 EMERGENCY 911 call #{later}"


async def test_a_call_the_store_refuses_is_left_out_and_the_rest_is_posted(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(feeds=EMERGENCY_ONLY)
    store = bot.store
    before, poisoned, after = cad.add_911(), cad.add_911("Poison"), cad.add_911()
    real = store.add_batch

    async def add_batch(posts: Sequence[Post]) -> None:
        if any(p.call_id == poisoned for p in posts):
            raise sqlite3.IntegrityError("a row SQLite will not take")
        await real(posts)

    store.add_batch = add_batch  # type: ignore[method-assign]
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, SLOW) == [f"🚨 EMERGENCY 911 call #{i}" for i in (before, after)]
    assert len([r for r in caplog.records if "the store refused it" in r.getMessage()]) == 1
    later = cad.add_911()
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, SLOW)[-1] == f"🚨 EMERGENCY 911 call #{later}"
    assert f"#{poisoned}" not in " ".join(shown_titles(discord_api, SLOW))


# --- a listener that faces the internet -----------------------------------------------------------------
@pytest.fixture
async def listening(make_bot: BotFactory, monkeypatch: pytest.MonkeyPatch) -> DispatchBot:
    monkeypatch.setattr(listener_module, "IDLE_TIMEOUT", 0.3)
    monkeypatch.setattr(listener_module, "BODY_TIMEOUT", 0.3)
    return await make_bot(feeds=EMERGENCY_ONLY, push=push_settings())


def port_of(bot: DispatchBot) -> int:
    listener = bot.intake.listener if bot.intake else None
    assert listener is not None
    return listener.bound_port


async def test_idle_connections_and_slow_requests_are_closed_while_the_feed_keeps_posting(
    listening: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    port = port_of(listening)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    slow_headers = await asyncio.open_connection("127.0.0.1", port)
    slow_headers[1].write(b"POST /sonorancad/event HTTP/1.1\r\nHost: bot\r\n")  # and nothing more
    slow_body = await asyncio.open_connection("127.0.0.1", port)
    slow_body[1].write(b'POST /sonorancad/event HTTP/1.1\r\nHost: bot\r\nContent-Length: 100\r\n\r\n{"key"')
    call_id = cad.add_911()
    await feed_of(listening).poll_once()
    assert shown_titles(discord_api, SLOW) == [f"🚨 EMERGENCY 911 call #{call_id}"]
    for reader, _ in idle:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the bot
    assert await asyncio.wait_for(slow_headers[0].read(), 5) == b""
    assert b" 408 " in await asyncio.wait_for(slow_body[0].read(), 5)
    for _, writer in [*idle, slow_headers, slow_body]:
        writer.close()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_newcomer_over_the_cap_closes_the_oldest_connection_that_has_not_proved_itself(
    make_bot: BotFactory,
    monkeypatch: pytest.MonkeyPatch,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(listener_module, "MAX_CONNECTIONS", 3)
    bot = await make_bot(feeds=EMERGENCY_ONLY, push=push_settings())
    port = port_of(bot)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    over = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    for reader, _ in held:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # at once, long before any timeout
    for reader, _ in over:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(), 0.2)  # still open
    pusher = Pusher(bot, session)  # one more over the cap: it closes over[0], and is answered
    assert await pusher.send("EVENT_911", {"call": call_911(707)}) == (200, "ok")
    for _, writer in held + over:
        writer.close()
    full = [r for r in caplog.records if "connections are open" in r.getMessage()]
    assert len(full) == 1


async def test_deep_json_a_key_that_is_not_text_and_too_many_events_are_refused(
    listening: DispatchBot, session: aiohttp.ClientSession, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    pusher = Pusher(listening, session)
    nested = "[" * 100_000 + "]" * 100_000
    deep = f'{{"key": "{API_KEY}", "type": "EVENT_911", "data": {nested}}}'
    assert (await pusher.raw(deep))[0] == 400
    assert (await pusher.raw('{"key": "\\udfff", "type": "EVENT_911", "data": {}}'))[0] == 400
    many = [{"call": call_911(800 + i)} for i in range(listener_module.MAX_EVENTS_PER_REQUEST + 1)]
    assert (await pusher.raw(event("EVENT_911", many)))[0] == 413
    assert messages(discord_api, SLOW) == []
    assert not [r for r in caplog.records if r.exc_info]


async def test_overload_is_said_with_retry_after_instead_of_queued(
    make_bot: BotFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(listener_module, "MAX_EVENTS_PER_MINUTE", 2)
    pusher = Pusher(await make_bot(feeds=EMERGENCY_ONLY, push=push_settings()), session)
    monkeypatch.setattr(listener_module, "MAX_PENDING", 0)  # as if 128 requests waited to be stored
    async with session.post(pusher.url, data=event("EVENT_911", {"call": call_911(708)})) as response:
        assert response.status == 503 and response.headers["Retry-After"] == "5"
    monkeypatch.setattr(listener_module, "MAX_PENDING", 128)
    assert (await pusher.raw(event("EVENT_911", [{"call": call_911(709)}, {"call": call_911(710)}])))[0] == 200
    async with session.post(pusher.url, data=event("EVENT_911", {"call": call_911(711)})) as response:
        assert response.status == 429 and 0 < int(response.headers["Retry-After"]) <= 60
    busy = [r for r in caplog.records if r.name == "bot.intake.listener" and r.levelno == logging.WARNING]
    assert len(busy) == 2  # one line per change of state: busy, ok again, busy


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"no finite hard limit above 256 here ({hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # systemd's default soft limit is 1,024
    try:
        assert listener_module.raise_open_file_limit() == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_events_being_stored_when_the_engine_stops_are_refused_not_left_waiting(
    make_bot: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop (a /setup rebuild, a lost lease) cancels the engine's committer while it stores a
    burst: whoever waits for those events is told they were not stored (the listener answers 503,
    to be sent again), instead of waiting for ever."""
    from bot.feed.engine import EngineStopped, FeedEngine
    from bot.sonoran.events import New911
    from bot.sonoran.models import EmergencyCall

    bot = await make_bot(feeds=[{"server_id": 1, "channel_id": 1}])
    engine = feed_of(bot)
    storing = asyncio.Event()

    async def slow_store(self: FeedEngine, taken: Any) -> None:
        storing.set()
        await asyncio.Event().wait()  # a store that never answers

    monkeypatch.setattr(FeedEngine, "handle_events", slow_store)
    event = New911(EmergencyCall.model_validate(call_911(7)))
    first = asyncio.create_task(engine.take_events(1, [event]))
    await storing.wait()
    second = asyncio.create_task(engine.take_events(1, [event]))  # queued behind the first burst
    await asyncio.sleep(0)
    await engine.halt()
    for waiting in (first, second):
        with pytest.raises(EngineStopped):
            await asyncio.wait_for(waiting, 5)
