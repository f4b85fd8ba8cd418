"""The feed end to end: fake CAD over loopback, Discord caught by aioresponses, a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.core import DispatchBot
from bot.db import SqliteDatabase
from bot.feed import FeedEngine
from bot.posts import PostKind
from bot.sonoran import RateLimited
from bot.sonoran.ratelimit import SlidingWindowLimiter

from .conftest import BotFactory
from .doubles.discord_fakes import ChannelFault, FakeDiscord, dispatch_interaction, slash
from .doubles.fake_cad import FakeCad

EMERGENCY_CHANNEL = 1001
CIVIL_CHANNEL = 1002
DISPATCH_CHANNEL = 1003
PING_ROLE = 999000999000999000

ROUTED = [
    {"server_id": 1, "channel_id": EMERGENCY_CHANNEL, "calls": ["emergency"], "ping_role_id": PING_ROLE},
    {"server_id": 1, "channel_id": CIVIL_CHANNEL, "calls": ["civil"]},
]
ONE_FEED = [{"server_id": 1, "channel_id": EMERGENCY_CHANNEL}]


def feed_of(bot: DispatchBot) -> FeedEngine:
    assert bot.feed is not None, "the Feed cog is not loaded"
    return bot.feed


async def crash_between_post_and_record(bot: DispatchBot) -> None:
    """Runs a cycle whose record of a message Discord made fails, as if the process died right there."""
    store = bot.store
    real_mark_sent = store.mark_sent
    crashed: list[str] = []

    async def crash(batch: str, *args: Any) -> None:
        crashed.append(batch)
        raise RuntimeError("power cut between 'sent' and 'recorded'")

    store.mark_sent = crash  # type: ignore[method-assign,assignment]
    await feed_of(bot).poll_once()  # the channel's writer met the crash
    store.mark_sent = real_mark_sent  # type: ignore[method-assign]
    assert crashed, "no message was recorded in this cycle"


def posts(discord_api: FakeDiscord, channel: int) -> list[dict[str, Any]]:
    return discord_api.sent("POST", rf"/channels/{channel}/messages$")


def edits(discord_api: FakeDiscord, channel: int) -> list[dict[str, Any]]:
    return discord_api.sent("PATCH", rf"/channels/{channel}/messages/\d+$")


def embed_titles(body: dict[str, Any]) -> list[str]:
    return [e["title"] for e in body["embeds"]]


async def test_new_call_posted_once(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911("Anna", "Grove St", "House fire", metadata={"postal": "305", "x": 12.5, "y": -8})
    await feed_of(bot).poll_once()
    (body,) = posts(discord_api, EMERGENCY_CHANNEL)
    (embed,) = body["embeds"]
    assert embed["title"] == f"🚨 EMERGENCY 911 call #{call_id}"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Caller"] == "Anna" and fields["Location"] == "Grove St"
    assert "**Postal:** 305" in fields["Details"] and "**Coordinates:** 12.5, -8" in fields["Details"]
    assert fields["Status"].startswith("Received <t:") and fields["Status"].endswith(":R>")
    assert embed["timestamp"] and embed["footer"]["text"] == "CAD server 1 · Emergency call"
    assert body["allowed_mentions"] == {"parse": []} and not body.get("content")
    await feed_of(bot).poll_once()
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 1 and edits(discord_api, EMERGENCY_CHANNEL) == []


async def test_the_feed_cog_runs_one_cycle_as_the_design_promises(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    """`await bot.get_cog("Feed").poll_once()` is a stable surface (../shared/design.md)."""
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911("Anna", "Grove St", "House fire")
    cog = bot.get_cog("Feed")
    assert cog is not None and bot.get_cog("Dispatch") is not None
    delay = await cog.poll_once()  # type: ignore[attr-defined]
    assert delay == bot.settings.cad.poll_seconds
    (body,) = posts(discord_api, EMERGENCY_CHANNEL)
    assert embed_titles(body) == [f"🚨 EMERGENCY 911 call #{call_id}"]


async def test_routing_and_role_ping(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=ROUTED)
    emergency = cad.add_911("A", "B", "C @everyone <@&1234567890123456789>", emergency=True)
    civil = cad.add_911("D", "E", "F", emergency=False)
    await feed_of(bot).poll_once()
    (urgent,) = posts(discord_api, EMERGENCY_CHANNEL)
    (calm,) = posts(discord_api, CIVIL_CHANNEL)
    assert embed_titles(urgent) == [f"🚨 EMERGENCY 911 call #{emergency}"]
    assert embed_titles(calm) == [f"📞 CIVIL 911 call #{civil}"]
    assert urgent["content"] == f"<@&{PING_ROLE}> new emergency call"
    assert urgent["allowed_mentions"] == {"parse": [], "roles": [PING_ROLE]}
    assert "@everyone" not in urgent["embeds"][0]["description"]
    assert "<@&1234" not in urgent["embeds"][0]["description"]
    assert calm["allowed_mentions"] == {"parse": []} and not calm.get("content")
    assert cad.operations() == ["get_calls"]  # one request per server, however many feeds


async def test_restart_posts_only_what_is_new(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path
) -> None:
    first = await make_bot(feeds=ONE_FEED)
    seen = cad.add_911("Seen", "x", "y")
    await feed_of(first).poll_once()
    await first.close()
    gone = cad.add_911("Came and went", "x", "y")
    arrived = cad.add_911("Arrived while down", "x", "y")
    cad.servers[1].emergency.pop(gone)  # unavoidable loss: it came and went while the bot was down
    cad.servers[1].emergency.pop(seen)
    second = await make_bot(feeds=ONE_FEED)
    await feed_of(second).poll_once()
    sent = posts(discord_api, EMERGENCY_CHANNEL)
    assert [embed_titles(b) for b in sent] == [
        [f"🚨 EMERGENCY 911 call #{seen}"],
        [f"🚨 EMERGENCY 911 call #{arrived}"],
    ]
    (edit,) = edits(discord_api, EMERGENCY_CHANNEL)
    assert edit["embeds"][0]["title"] == f"EMERGENCY 911 call #{seen} (removed)"


async def test_answered_call_is_edited_in_place(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    await feed_of(bot).poll_once()
    cad.answer_911(call_id)
    await feed_of(bot).poll_once()
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 1
    (edit,) = edits(discord_api, EMERGENCY_CHANNEL)
    (embed,) = edit["embeds"]
    assert embed["title"] == f"EMERGENCY 911 call #{call_id} (answered)"
    assert embed["color"] == 0x607D8B  # greyed
    assert "Answered by dispatch <t:" in embed["fields"][-1]["value"]
    assert edit["allowed_mentions"] == {"parse": []}
    await feed_of(bot).poll_once()
    assert len(edits(discord_api, EMERGENCY_CHANNEL)) == 1  # final: no more edits


async def test_remove911_shows_who_removed(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    await feed_of(bot).poll_once()
    await dispatch_interaction(bot, slash("remove911", {"call_id": call_id}, permissions=1 << 5))
    await feed_of(bot).poll_once()
    (edit,) = edits(discord_api, EMERGENCY_CHANNEL)
    assert edit["embeds"][0]["title"].endswith("(removed)")
    assert "Removed by Officer Tester <t:" in edit["embeds"][0]["fields"][-1]["value"]


async def test_burst_of_30_is_3_messages(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    ids = [cad.add_911(f"Caller {i}", "x", "y") for i in range(30)]
    await feed_of(bot).poll_once()
    sent = posts(discord_api, EMERGENCY_CHANNEL)
    assert [len(b["embeds"]) for b in sent] == [10, 10, 10]
    assert [t for b in sent for t in embed_titles(b)] == [f"🚨 EMERGENCY 911 call #{i}" for i in ids]
    for call_id in ids[:12]:
        cad.servers[1].emergency.pop(call_id)
    await feed_of(bot).poll_once()
    assert len(edits(discord_api, EMERGENCY_CHANNEL)) == 2  # 12 changed calls, two messages: edits coalesced


async def test_dispatch_stream(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=[{"server_id": 1, "channel_id": DISPATCH_CHANNEL, "calls": [], "dispatch": True}])
    call_id = cad.add_dispatch("Pursuit", address="Route 68", priority=1)
    cad.add_911()  # filtered out by calls = []
    await feed_of(bot).poll_once()
    (body,) = posts(discord_api, DISPATCH_CHANNEL)
    assert embed_titles(body) == [f"Dispatch call #{call_id}: Pursuit"]
    await feed_of(bot).poll_once()
    assert edits(discord_api, DISPATCH_CHANNEL) == []
    cad.servers[1].active[call_id]["notes"].append({"label": "1-A-12", "content": "Suspect on foot", "type": "text"})
    cad.servers[1].active[call_id]["idents"] = [5, 6]
    await feed_of(bot).poll_once()
    fields = {f["name"]: f["value"] for f in edits(discord_api, DISPATCH_CHANNEL)[-1]["embeds"][0]["fields"]}
    assert fields["Notes (1)"] == "**1-A-12:** Suspect on foot" and fields["Units"] == "#5, #6"
    cad.close_dispatch(call_id)
    await feed_of(bot).poll_once()
    closed = edits(discord_api, DISPATCH_CHANNEL)[-1]["embeds"][0]
    assert closed["title"] == f"Dispatch call #{call_id}: Pursuit (closed)"
    assert len(posts(discord_api, DISPATCH_CHANNEL)) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "body": "boom"},
        {"status": 429, "body": "{}", "headers": {"Retry-After": "30"}},
        {"status": 200, "body": "{broken json", "content_type": "application/json"},
        {"status": 401, "body": "INVALID API KEY"},
    ],
    ids=["5xx", "429", "malformed", "auth"],
)
async def test_cad_faults_then_recovery(
    make_bot: BotFactory,
    cad: FakeCad,
    discord_api: FakeDiscord,
    fault: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    feed = feed_of(bot)
    call_id = cad.add_911()
    caplog.set_level(logging.INFO, logger="bot.feed")
    for _ in range(3):  # 5xx/timeouts are retried inside the client too: fail every attempt
        cad.fail_next("get_calls", **fault)
    delay = await feed.poll_once()
    assert posts(discord_api, EMERGENCY_CHANNEL) == []
    assert delay >= 10  # backed off (poll_seconds is 5 in tests)
    if fault["status"] == 429:
        assert delay >= 30
        sent = len(cad.requests)
        await feed.poll_once()
        assert len(cad.requests) == sent  # the client held it back instead of provoking another 429
        limiter = feed.community.sonoran.http.limiter("get_calls")
        assert isinstance(limiter, SlidingWindowLimiter)  # this process's own (no cluster here)
        limiter._blocked_until = 0  # as if the 30 s had passed
    else:
        for _ in range(3):
            cad.fail_next("get_calls", **fault)
        await feed.poll_once()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CAD server 1" in warnings[0].getMessage()  # one line per change
    cad.faults.clear()
    assert await feed.poll_once() == 5
    (body,) = posts(discord_api, EMERGENCY_CHANNEL)
    assert embed_titles(body) == [f"🚨 EMERGENCY 911 call #{call_id}"]
    assert any("answers again" in r.getMessage() for r in caplog.records[-3:])


async def test_cad_down_then_up(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=ONE_FEED, sonoran={"timeout_seconds": 0.2})
    cad.add_911()
    cad.fail_next("get_calls", delay=0.5)  # too slow: a timeout (the feed's poll is one request a cycle)
    await feed_of(bot).poll_once()
    assert posts(discord_api, EMERGENCY_CHANNEL) == []
    await feed_of(bot).poll_once()
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 1


@pytest.mark.parametrize(
    ("status", "code", "message", "logged"),
    [
        (403, 50013, "Missing Permissions", "missing permission (one of View Channel, Send Messages, Embed Links"),
        (404, 10003, "Unknown Channel", "the channel does not exist or the bot cannot see it"),
        (503, 0, "upstream connect error", "Discord answered HTTP 503"),
    ],
)
async def test_discord_faults_hold_the_post_and_retry(
    make_bot: BotFactory,
    cad: FakeCad,
    discord_api: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: int,
    message: str,
    logged: str,
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    caplog.set_level(logging.INFO, logger="bot.feed")
    call_id = cad.add_911()
    # (discord.py retries 500/502/504 itself, with sleeps; a 503 reaches the feed at once)
    for _ in range(2):
        discord_api.faults.append(ChannelFault(status, code, message))
    await feed_of(bot).poll_once()
    await feed_of(bot).poll_once()
    assert discord_api.channel_messages(EMERGENCY_CHANNEL) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "bot.feed"]
    assert len(warnings) == 1 and f"channel {EMERGENCY_CHANNEL}" in warnings[0] and logged in warnings[0]
    await feed_of(bot).poll_once()
    (message_,) = discord_api.channel_messages(EMERGENCY_CHANNEL)
    assert message_["embeds"][0]["title"] == f"🚨 EMERGENCY 911 call #{call_id}"
    await feed_of(bot).poll_once()
    assert len(discord_api.channel_messages(EMERGENCY_CHANNEL)) == 1  # and not again


async def test_deleted_message_is_forgotten_not_reposted(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    await feed_of(bot).poll_once()
    discord_api.messages.clear()  # a moderator deleted the post
    cad.servers[1].emergency[call_id]["description"] = "updated"
    await feed_of(bot).poll_once()
    await feed_of(bot).poll_once()
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 1
    assert len(edits(discord_api, EMERGENCY_CHANNEL)) == 1  # tried once, got 404, stopped


async def test_failed_edit_is_retried(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    await feed_of(bot).poll_once()
    cad.servers[1].emergency.pop(call_id)
    discord_api.faults.append(ChannelFault(403, 50001, "Missing Access", method="PATCH"))
    await feed_of(bot).poll_once()
    await feed_of(bot).poll_once()
    (message_,) = discord_api.channel_messages(EMERGENCY_CHANNEL)
    assert message_["embeds"][0]["title"].endswith("(removed)")


async def test_crash_between_send_and_record_does_not_duplicate(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    cad.add_911()
    await crash_between_post_and_record(bot)
    await bot.close()
    assert len(discord_api.channel_messages(EMERGENCY_CHANNEL)) == 1
    again = await make_bot(feeds=ONE_FEED)
    await feed_of(again).poll_once()
    await feed_of(again).poll_once()
    # the batch was sent again with the same nonce; Discord handed back the first message
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 2
    assert len(discord_api.channel_messages(EMERGENCY_CHANNEL)) == 1


async def test_two_servers_one_request_each(make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord) -> None:
    feeds = [
        {"server_id": 1, "channel_id": EMERGENCY_CHANNEL},
        {"server_id": 2, "channel_id": CIVIL_CHANNEL},
        {"server_id": 2, "channel_id": DISPATCH_CHANNEL},
    ]
    bot = await make_bot(feeds=feeds)
    cad.add_911(server=1)
    cad.add_911(server=2)
    await feed_of(bot).poll_once()
    assert [r.operation for r in cad.requests] == ["get_calls", "get_calls"]
    assert all(len(posts(discord_api, c)) == 1 for c in (EMERGENCY_CHANNEL, CIVIL_CHANNEL, DISPATCH_CHANNEL))
    footer = posts(discord_api, CIVIL_CHANNEL)[0]["embeds"][0]["footer"]["text"]
    assert footer.startswith("CAD server 2")


async def test_the_real_loop_runs_and_never_overlaps_poll_once(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED, autostart_feed=True)
    feed = feed_of(bot)
    feed.poll_seconds = 0.05
    cad.fail_next("get_calls", delay=0.2, passthrough=True)
    cad.add_911()
    await asyncio.sleep(0.05)
    await feed.poll_once()  # waits for the loop's cycle instead of running beside it
    for _ in range(50):
        if len(cad.requests) >= 3:
            break
        await asyncio.sleep(0.05)
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 1
    assert len(cad.requests) >= 3  # the loop went on polling by itself
    await bot.close()
    assert feed._task is None


async def test_health_file_and_presence(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = tmp_path / "health" / "last-poll"
    bot = await make_bot(feeds=ONE_FEED, state={"path": str(tmp_path / "s.sqlite3"), "health_file": str(health)})
    presences: list[str] = []

    async def change_presence(*, activity: Any = None, **_: Any) -> None:
        presences.append(activity.name)

    monkeypatch.setattr(bot, "change_presence", change_presence)
    await feed_of(bot).poll_once()
    assert health.exists() and presences == []  # no gateway: presence skipped
    monkeypatch.setattr(bot, "is_ready", lambda: True)
    cad.add_911()
    await feed_of(bot).poll_once()
    await feed_of(bot).poll_once()
    cad.add_dispatch()
    await feed_of(bot).poll_once()
    assert presences == ["1 active call(s)", "2 active call(s)"]  # one update per change, not per poll


async def test_discord_429_is_waited_out_without_losing_the_post(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    discord_api.faults.append(ChannelFault(429, 20028, "You are being rate limited.", retry_after=0.05))
    await feed_of(bot).poll_once()
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 2  # refused once, sent again by discord.py
    (message_,) = discord_api.channel_messages(EMERGENCY_CHANNEL)
    assert message_["embeds"][0]["title"] == f"🚨 EMERGENCY 911 call #{call_id}"
    assert (await bot.store.open_posts(EMERGENCY_CHANNEL, 1))[(PostKind.CALL_911, call_id)].message_id is not None


async def test_members_paging_never_starve_the_feed(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    # Sonoran's default budget (4 a minute) and poll interval (20 s): the feed keeps 3 slots.
    bot = await make_bot(feeds=ONE_FEED, sonoran={"poll_seconds": 20, "rate_limits": {"get_calls": 4}})
    assert bot.board.feed_reserve == 3
    await bot.board.refresh(2, interactive=True)  # a member's /calls for a server no feed polls: the 4th slot
    with pytest.raises(RateLimited):
        await bot.board.refresh(2, interactive=True)  # a second one would eat into the feed's share
    for _ in range(3):
        assert await feed_of(bot).poll_once() == 20  # the feed's three polls all go through
    assert cad.operations() == ["get_calls"] * 4


async def test_an_idle_cycle_reads_and_writes_no_sqlite(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    for _ in range(3):
        cad.add_911()
    feed = feed_of(bot)
    await feed.poll_once()  # posts them and loads the book
    statements: list[str] = []
    assert isinstance(bot.store.db, SqliteDatabase)
    await bot.store.db.trace(statements.append)
    await feed.poll_once()  # nothing changed in the CAD
    await bot.store.db.trace(None)
    assert statements == []
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 1
