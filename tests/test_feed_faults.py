"""The feed under faults and hostile input: it never sticks, never lies about what a message shows,
never ends calls on a reply that is no call list, and recovers from a CAD fault within a minute.
Fake CAD over loopback, Discord through the strict double, a real SQLite file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot.core import DispatchBot

from .conftest import BotFactory
from .doubles.discord_fakes import ChannelFault, FakeDiscord
from .doubles.discord_limits import EMBED_TOTAL
from .doubles.fake_cad import FakeCad
from .test_feed import EMERGENCY_CHANNEL, ONE_FEED, crash_between_post_and_record, edits, embed_titles, feed_of, posts

DISPATCH_CHANNEL = 1003
DISPATCH_FEED = [{"server_id": 1, "channel_id": DISPATCH_CHANNEL, "calls": [], "dispatch": True}]
MARKUP = "**[x](y)** ||@here|| <@&1> `c` ~~s~~ __u__ # -# > "


def shown_titles(discord_api: FakeDiscord, channel: int) -> list[str]:
    """What the channel finally shows, message by message, embed by embed."""
    return [e["title"] for m in discord_api.channel_messages(channel) for e in m["embeds"]]


def embed_chars(body: dict[str, Any]) -> int:
    total = 0
    for e in body["embeds"]:
        total += len(e.get("title") or "") + len(e.get("description") or "")
        total += sum(len(f["name"]) + len(f["value"]) for f in e.get("fields", []))
        total += len((e.get("footer") or {}).get("text") or "")
    return total


# --- Discord's per-message limits ---------------------------------------------------------------------


async def test_long_markup_heavy_calls_are_batched_by_size(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    # what /911 lets a member type: caller 100, location 200, description 1000 characters
    ids = [cad.add_911(MARKUP * 3, (MARKUP * 5)[:200], (MARKUP * 30)[:1000]) for _ in range(3)]
    await feed_of(bot).poll_once()
    sent = posts(discord_api, EMERGENCY_CHANNEL)
    assert discord_api.refused == []  # Discord took every message
    assert all(embed_chars(body) <= EMBED_TOTAL for body in sent)
    assert len(sent) >= 2  # three such calls do not fit one message
    assert shown_titles(discord_api, EMERGENCY_CHANNEL) == [f"🚨 EMERGENCY 911 call #{i}" for i in ids]
    later = cad.add_911("After", "x", "y")
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, EMERGENCY_CHANNEL)[-1] == f"🚨 EMERGENCY 911 call #{later}"


async def test_a_poisoned_call_is_split_out_and_never_holds_up_the_channel(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    caplog.set_level(logging.WARNING, logger="bot.feed")
    discord_api.poison = "FORBIDDEN-WORD"
    ids = [cad.add_911(f"Caller {i}", "x", "FORBIDDEN-WORD" if i == 6 else "y") for i in range(10)]
    await feed_of(bot).poll_once()
    titles = shown_titles(discord_api, EMERGENCY_CHANNEL)
    assert titles == [f"🚨 EMERGENCY 911 call #{i}" if i != ids[6] else f"911 call #{i}" for i in ids]
    (stand_in,) = [
        e
        for m in discord_api.channel_messages(EMERGENCY_CHANNEL)
        for e in m["embeds"]
        if "911 call #" in e["title"] and "🚨" not in e["title"]
    ]
    assert "could" not in stand_in["title"] and "refused to show" in stand_in["description"]
    assert any(f"call #{ids[6]}" in r.getMessage() for r in caplog.records)
    requests = len(posts(discord_api, EMERGENCY_CHANNEL))
    await feed_of(bot).poll_once()
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == requests  # settled: nothing is retried
    later = cad.add_911("After", "x", "y")
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, EMERGENCY_CHANNEL)[-1] == f"🚨 EMERGENCY 911 call #{later}"
    # the poisoned call ends: its stand-in is edited (the real text is refused again), never stuck
    cad.servers[1].emergency.pop(ids[6])
    await feed_of(bot).poll_once()
    await feed_of(bot).poll_once()
    assert f"911 call #{ids[6]} (removed)" in shown_titles(discord_api, EMERGENCY_CHANNEL)


async def test_edits_of_calls_that_grew_obey_the_limits(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=DISPATCH_FEED)
    ids = [cad.add_dispatch(f"Call {i}", address="Route 68") for i in range(10)]
    await feed_of(bot).poll_once()
    (first,) = posts(discord_api, DISPATCH_CHANNEL)
    assert len(first["embeds"]) == 10
    for call_id in ids:  # every call grows: long descriptions and notes
        call = cad.servers[1].active[call_id]
        call["description"] = MARKUP * 40
        call["notes"] = [{"label": "1-A-12", "content": MARKUP * 10, "type": "text"} for _ in range(5)]
    await feed_of(bot).poll_once()
    (edit,) = edits(discord_api, DISPATCH_CHANNEL)
    assert discord_api.refused == [] and len(edit["embeds"]) == 10 and embed_chars(edit) <= EMBED_TOTAL
    (message,) = discord_api.channel_messages(DISPATCH_CHANNEL)
    assert [e["title"] for e in message["embeds"]] == [f"Dispatch call #{i}: Call {n}" for n, i in enumerate(ids)]


# --- a re-sent batch must end up showing the truth ---------------------------------------------------


async def test_a_5xx_after_discord_made_the_message_still_ends_showing_the_truth(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    discord_api.faults.append(ChannelFault(503, 0, "upstream reset", after_create=True))
    await feed_of(bot).poll_once()  # Discord made the message, but the bot saw a 503
    cad.servers[1].emergency.pop(call_id)  # the call ends before the batch is sent again
    await feed_of(bot).poll_once()  # same nonce: Discord hands back the first message, showing "active"
    await feed_of(bot).poll_once()
    (message,) = discord_api.channel_messages(EMERGENCY_CHANNEL)
    assert [e["title"] for e in message["embeds"]] == [f"EMERGENCY 911 call #{call_id} (removed)"]
    (edit,) = edits(discord_api, EMERGENCY_CHANNEL)
    assert edit["embeds"][0]["title"].endswith("(removed)")


async def test_a_crash_between_post_and_record_still_ends_showing_the_truth(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    await crash_between_post_and_record(bot)
    await bot.close()
    cad.servers[1].emergency.pop(call_id)
    again = await make_bot(feeds=ONE_FEED)
    await feed_of(again).poll_once()
    await feed_of(again).poll_once()
    (message,) = discord_api.channel_messages(EMERGENCY_CHANNEL)
    assert [e["title"] for e in message["embeds"]] == [f"EMERGENCY 911 call #{call_id} (removed)"]


# --- a reply that is no call list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", ['{"message": "upstream busy, try again later"}', "{}"], ids=["message", "empty-object"]
)
async def test_a_reply_without_call_lists_ends_nothing(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture, body: str
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    caplog.set_level(logging.WARNING, logger="bot.feed")
    call_id = cad.add_911()
    await feed_of(bot).poll_once()
    for _ in range(2):
        cad.fail_next("get_calls", status=200, body=body, content_type="application/json")
        await feed_of(bot).poll_once()
    assert edits(discord_api, EMERGENCY_CHANNEL) == []
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "BadReply" in warning and "no call lists" in warning
    await feed_of(bot).poll_once()
    assert edits(discord_api, EMERGENCY_CHANNEL) == []
    assert shown_titles(discord_api, EMERGENCY_CHANNEL) == [f"🚨 EMERGENCY 911 call #{call_id}"]


async def test_an_ended_post_comes_back_when_the_cad_lists_the_call_again(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=ONE_FEED)
    call_id = cad.add_911()
    await feed_of(bot).poll_once()
    call = cad.servers[1].emergency.pop(call_id)
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, EMERGENCY_CHANNEL) == [f"EMERGENCY 911 call #{call_id} (removed)"]
    cad.servers[1].emergency[call_id] = call
    await feed_of(bot).poll_once()
    assert shown_titles(discord_api, EMERGENCY_CHANNEL) == [f"🚨 EMERGENCY 911 call #{call_id}"]
    assert len(posts(discord_api, EMERGENCY_CHANNEL)) == 1  # the same message, edited back


# --- recovery after a CAD fault, with the real limiter -----------------------------------------------


async def test_one_request_per_poll_and_the_first_call_after_recovery_is_posted(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    # Sonoran's default budget (4 call lists a minute) and the default poll interval
    bot = await make_bot(feeds=ONE_FEED, sonoran={"poll_seconds": 20, "rate_limits": {"get_calls": 4}})
    cad.fail_next("get_calls", status=500, body="boom")
    delay = await feed_of(bot).poll_once()
    assert cad.operations() == ["get_calls"]  # not retried at once: the next cycle is the retry
    assert delay <= 60
    call_id = cad.add_911()  # filed as the CAD answers again
    assert await feed_of(bot).poll_once() == 20
    assert cad.operations() == ["get_calls"] * 2  # the limiter let it through
    assert shown_titles(discord_api, EMERGENCY_CHANNEL) == [f"🚨 EMERGENCY 911 call #{call_id}"]


async def test_backoff_is_capped_at_a_minute(make_bot: BotFactory, cad: FakeCad) -> None:
    bot = await make_bot(feeds=ONE_FEED, sonoran={"poll_seconds": 20})
    delays = []
    for _ in range(6):
        cad.fail_next("get_calls", status=502, body="bad gateway")
        delays.append(await feed_of(bot).poll_once())
    assert delays == [40, 60, 60, 60, 60, 60]
    assert cad.operations() == ["get_calls"] * 6


async def test_an_unwritable_health_file_is_logged_once_and_the_feed_goes_on(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bot: DispatchBot = await make_bot(
        feeds=ONE_FEED, state={"path": str(tmp_path / "s.sqlite3"), "health_file": str(blocker / "last-poll")}
    )
    caplog.set_level(logging.INFO, logger="bot.feed")
    first = cad.add_911()
    assert await feed_of(bot).poll_once() == 5
    second = cad.add_911()
    assert await feed_of(bot).poll_once() == 5  # no 80 s backoff: the feed is fine
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "state.health_file" in errors[0] and "a-file" in errors[0]
    assert embed_titles(posts(discord_api, EMERGENCY_CHANNEL)[-1]) == [f"🚨 EMERGENCY 911 call #{second}"]
    assert shown_titles(discord_api, EMERGENCY_CHANNEL)[0] == f"🚨 EMERGENCY 911 call #{first}"
