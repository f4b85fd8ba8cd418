"""Units and panic in Discord, end to end on API v1 and v2: panic alerts from push events and from
the units list alone, followed by one message each; unit boards edited in place, coalesced and
split within Discord's limits; the units budget; /units, /status and /panic (v2 only) through raw
interaction payloads; Acknowledge, by two dispatchers at once and by a member without rights. Discord
is the strict double, the CAD the fake one over loopback, the state a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.core import DispatchBot
from bot.sandbox.cad import SONORAN_LIMITS, Assumed
from bot.sonoran import RateLimited, Unit
from bot.sonoran.events import (
    MAX_IDS_PER_EVENT,
    MAX_UNITS_PER_EVENT,
    Ignored,
    PanicChanged,
    StatusChanged,
    UnitsOffDuty,
    UnitsOnDuty,
    events_of,
    read_envelope,
)
from bot.units.engine import UnitsEngine
from bot.units.render import PAGE_BUDGET

from .conftest import BotFactory
from .doubles.discord_fakes import (
    CHANNEL_ID,
    MANAGE_GUILD,
    USER_ID,
    ChannelFault,
    FakeDiscord,
    button,
    dispatch_interaction,
    slash,
)
from .doubles.discord_limits import message_errors
from .doubles.fake_cad import API_KEY, COMMUNITY_ID, FakeCad
from .helpers import GENEROUS_LIMITS
from .test_cards import components, confirm, last_text, with_button
from .test_feed import edits, feed_of, posts
from .test_push import Pusher, push_settings

ALERTS = int(CHANNEL_ID)  # the channel the fake interactions come from: Acknowledge is clicked there
BOARD = 4002
AUDIT = 4003
ROLE = 7770001
ALERT_SETTINGS = [{"server_id": 1, "channel_id": ALERTS, "ping_role_id": ROLE}]
BOARD_SETTINGS = [{"server_id": 1, "channel_id": BOARD}]


class Clock:
    """The time the rate limiters go by: a test moves it a minute on instead of waiting one."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def minute(self) -> None:
        self.now += 60


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def units_bot(make_bot: BotFactory, clock: Clock) -> BotFactory:
    async def factory(**overrides: Any) -> DispatchBot:
        overrides.setdefault("alerts", ALERT_SETTINGS)
        overrides.setdefault("boards", BOARD_SETTINGS)
        overrides.setdefault("units", {"board_edit_seconds": 2})
        overrides.setdefault("sonoran", {"rate_limits": GENEROUS_LIMITS})
        return await make_bot(clock=clock, **overrides)

    return factory


def units_of(bot: DispatchBot) -> UnitsEngine:
    return feed_of(bot).units


async def poll(bot: DispatchBot, clock: Clock) -> None:
    """The next units poll, a minute after the last (the list allows the bot 1 or 2 a minute)."""
    clock.minute()
    await units_of(bot).poll_once()


async def board_settled(bot: DispatchBot) -> None:
    """The board's changes, without waiting out its edit window (as a clean stop does), delivered."""
    units_of(bot).hurry_boards()
    await feed_of(bot).settled()


def squad(cad: FakeCad) -> None:
    cad.add_unit(21, "1A-12", "J. Smith", "LSPD", status=2, location="Grove St")
    cad.add_unit(22, "2B-07", "A. Jones", "BCSO", status=3)
    cad.add_unit(23, "M-3", "R. Diaz", "EMS", status=4)


@pytest.fixture
async def pushed(
    units_bot: BotFactory, cad: FakeCad, session: aiohttp.ClientSession, clock: Clock
) -> tuple[DispatchBot, Pusher]:
    """A bot that takes push events and has read the squad's units once."""
    squad(cad)
    bot = await units_bot(push=push_settings())
    await poll(bot, clock)
    return bot, Pusher(bot, session)


def alert_posts(discord_api: FakeDiscord) -> list[dict[str, Any]]:
    return posts(discord_api, ALERTS)


# --- panic alerts --------------------------------------------------------------------------------------
async def test_a_panic_event_posts_one_alert_that_pings_the_role_and_is_edited_on_clear(
    pushed: tuple[DispatchBot, Pusher], cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    bot, pusher = pushed
    assert await pusher.send("EVENT_UNIT_PANIC", {"identIds": [21], "isPanic": True}) == (200, "ok")
    (alert,) = alert_posts(discord_api)
    assert alert["content"] == f"<@&{ROLE}> PANIC: 1A-12 J. Smith"
    assert alert["allowed_mentions"]["roles"] == [ROLE] and alert["allowed_mentions"]["parse"] == []
    (embed,) = alert["embeds"]
    assert embed["title"] == "🚨 PANIC: 1A-12 J. Smith"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Department"] == "LSPD" and fields["Location"] == "Grove St" and fields["Call"] == "none"
    assert [c["label"] for c in components(alert)] == ["Acknowledge"]

    # the same panic again (a retry, the poll seeing it too): still one alert
    assert await pusher.send("EVENT_UNIT_PANIC", {"identId": 21, "isPanic": True}) == (200, "ok")
    cad.set_panic(21)
    await poll(bot, clock)
    assert len(alert_posts(discord_api)) == 1

    assert await pusher.send("EVENT_UNIT_PANIC", {"identIds": [21], "isPanic": False}) == (200, "ok")
    assert len(alert_posts(discord_api)) == 1
    cleared = edits(discord_api, ALERTS)[-1]
    assert cleared["embeds"][0]["title"] == "Panic cleared: 1A-12 J. Smith"
    assert "Cleared <t:" in cleared["embeds"][0]["description"]
    assert cleared["components"] == [] and cleared["allowed_mentions"] == {"parse": []}  # an edit pings nobody

    # a new panic after a clear is a new alert
    cad.set_panic(21, False)
    assert await pusher.send("EVENT_UNIT_PANIC", {"identIds": [21], "isPanic": True}) == (200, "ok")
    assert len(alert_posts(discord_api)) == 2


async def test_a_panic_set_through_the_api_is_found_by_the_units_poll_alone(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock, api_version: int
) -> None:
    squad(cad)
    call_id = cad.add_dispatch("Shots fired", idents=[22])
    bot = await units_bot(feeds=[{"server_id": 1, "channel_id": 4010, "calls": [], "dispatch": True}])
    await feed_of(bot).poll_once()  # the call list: which unit is on which call
    await poll(bot, clock)
    assert alert_posts(discord_api) == []
    cad.set_panic(22)  # the FiveM resource sets panics through the API: Sonoran sends no event
    await poll(bot, clock)
    (alert,) = alert_posts(discord_api)
    fields = {f["name"]: f["value"] for f in alert["embeds"][0]["fields"]}
    assert alert["content"].endswith("PANIC: 2B-07 A. Jones")
    assert fields["Call"] == f"\\#{call_id} · Shots fired · Mission Row"  # "#" escaped: no heading
    cad.set_panic(22, False)
    await poll(bot, clock)
    assert len(alert_posts(discord_api)) == 1
    assert edits(discord_api, ALERTS)[-1]["embeds"][0]["title"] == "Panic cleared: 2B-07 A. Jones"
    requests = [r for r in cad.requests if r.operation == "get_active_units"]
    if api_version == 2:
        assert requests[-1].path == "/v2/emergency/servers/1/units"
        assert requests[-1].query == {"includeOffline": "false", "onlyUnits": "true", "limit": "100", "offset": "0"}
    else:
        assert requests[-1].body["data"][0] == {
            "serverId": 1,
            "onlyUnits": True,
            "includeOffline": False,
            "limit": 100,
            "offset": 0,
        }


async def test_a_unit_that_logs_off_in_panic_clears_its_alert(
    pushed: tuple[DispatchBot, Pusher], discord_api: FakeDiscord
) -> None:
    _, pusher = pushed
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [23], "isPanic": True})
    assert await pusher.send("EVENT_UNIT_LOGOUT", {"identId": 23}) == (200, "ok")
    assert len(alert_posts(discord_api)) == 1
    assert edits(discord_api, ALERTS)[-1]["embeds"][0]["title"] == "Panic cleared: M-3 R. Diaz"


async def test_panics_across_a_restart_are_neither_lost_nor_posted_twice(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    squad(cad)
    first = await units_bot()
    cad.set_panic(21)
    await poll(first, clock)
    (before,) = alert_posts(discord_api)
    await first.close()
    cad.set_panic(21, False)  # cleared while the bot was down
    cad.set_panic(22)  # and another pressed
    second = await units_bot()
    await poll(second, clock)
    after = alert_posts(discord_api)
    assert len(after) == 2 and after[1]["content"].endswith("PANIC: 2B-07 A. Jones")
    message_id = next(m["id"] for m in discord_api.channel_messages(ALERTS) if "J. Smith" in m["content"])
    cleared = discord_api.sent("PATCH", rf"/channels/{ALERTS}/messages/{message_id}$")
    assert cleared[-1]["embeds"][0]["title"] == "Panic cleared: 1A-12 J. Smith"
    assert before["nonce"] != after[1]["nonce"]


async def test_an_alert_stored_but_not_posted_before_a_crash_is_posted_once(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    squad(cad)
    cad.set_panic(21)
    # the alert channel refuses (a missing permission): the alert waits in the store
    discord_api.channel_faults[str(ALERTS)] = ChannelFault(403, 50013, "Missing Permissions")
    first = await units_bot()
    await poll(first, clock)
    assert discord_api.channel_messages(ALERTS) == []
    await first.close()
    del discord_api.channel_faults[str(ALERTS)]
    second = await units_bot()
    await feed_of(second).settled()  # delivered at start, before any poll
    (alert,) = discord_api.channel_messages(ALERTS)
    assert alert["content"].endswith("PANIC: 1A-12 J. Smith")
    await poll(second, clock)
    assert len(discord_api.channel_messages(ALERTS)) == 1


async def test_a_poll_asked_before_an_event_does_not_undo_it(
    pushed: tuple[DispatchBot, Pusher], discord_api: FakeDiscord, clock: Clock
) -> None:
    bot, pusher = pushed
    # the poll's request leaves, the unit presses panic in the CAD (an event), then the old list arrives
    real = bot.sonoran.get_units

    async def slow_list(*args: Any, **kwargs: Any) -> Any:
        units = await real(*args, **kwargs)
        await pusher.send("EVENT_UNIT_PANIC", {"identIds": [21], "isPanic": True})
        return units

    bot.sonoran.get_units = slow_list  # type: ignore[method-assign]
    await poll(bot, clock)
    assert len(alert_posts(discord_api)) == 1
    assert not any("cleared" in e["embeds"][0]["title"] for e in edits(discord_api, ALERTS))


# --- Acknowledge -------------------------------------------------------------------------------------------
async def panic_alert(bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, clock: Clock) -> dict[str, Any]:
    squad(cad)
    cad.set_panic(21)
    await poll(bot, clock)
    (message,) = discord_api.channel_messages(ALERTS)
    return message


async def test_acknowledge_by_a_dispatcher_shows_who_and_is_audited(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    bot = await units_bot(audit={"channel_id": AUDIT})
    message = await panic_alert(bot, cad, discord_api, clock)
    (custom_id,) = [c["custom_id"] for c in components(message)]
    await dispatch_interaction(bot, button(custom_id, message["id"], message=message))
    assert "You acknowledged the panic of 1A-12 J. Smith" in last_text(discord_api)
    await feed_of(bot).settled()
    edit = edits(discord_api, ALERTS)[-1]
    assert "Acknowledged by user555" in edit["embeds"][0]["description"] and edit["components"] == []
    assert bot.audit is not None and await bot.audit.flush()
    (audit,) = discord_api.sent("POST", rf"/channels/{AUDIT}/messages$")[-1]["embeds"]
    assert audit["title"] == "panic Acknowledge: done" and "unit #21" in json.dumps(audit)


async def test_two_dispatchers_acknowledging_at_once_one_takes_it(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    bot = await units_bot()
    message = await panic_alert(bot, cad, discord_api, clock)
    (custom_id,) = [c["custom_id"] for c in components(message)]
    await dispatch_interaction(
        bot,
        button(custom_id, message["id"], message=message, user_id="700000000000000001"),
        button(custom_id, message["id"], message=message, user_id="700000000000000002"),
    )
    texts = [r["data"]["content"] for r in discord_api.sent("POST", r"/interactions/\d+/[^/]+/callback$")[-2:]]
    assert sum("You acknowledged" in t for t in texts) == 1
    assert sum("already acknowledged this panic" in t for t in texts) == 1
    await feed_of(bot).settled()
    assert len(alert_posts(discord_api)) == 1


async def test_acknowledge_without_rights_or_on_a_crafted_alert_is_refused_and_audited(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    bot = await units_bot(audit={"channel_id": AUDIT})
    message = await panic_alert(bot, cad, discord_api, clock)
    (custom_id,) = [c["custom_id"] for c in components(message)]
    await dispatch_interaction(bot, button(custom_id, message["id"], message=message, permissions=0))
    assert "Only dispatchers" in last_text(discord_api)
    crafted = with_button(message, "alert:ack:999999")
    await dispatch_interaction(bot, button("alert:ack:999999", message["id"], message=crafted))
    assert "not shown in this channel" in last_text(discord_api)
    await feed_of(bot).settled()
    assert not any("Acknowledged by" in json.dumps(e) for e in edits(discord_api, ALERTS))
    assert bot.audit is not None and await bot.audit.flush()
    titles = [e["title"] for body in discord_api.sent("POST", rf"/channels/{AUDIT}/messages$") for e in body["embeds"]]
    assert titles == ["panic Acknowledge: refused", "panic Acknowledge: refused"]


# --- the board -------------------------------------------------------------------------------------------
async def test_the_board_follows_logins_statuses_attaches_and_logouts_with_edits_coalesced(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, session: aiohttp.ClientSession, clock: Clock
) -> None:
    squad(cad)
    bot = await units_bot(push=push_settings(), units={"board_edit_seconds": 30})
    await poll(bot, clock)
    await board_settled(bot)
    (board,) = posts(discord_api, BOARD)
    text = board["embeds"][0]["description"]
    assert "**AVAILABLE** (1)" in text and "**1A-12** · J. Smith · LSPD" in text and "**ON\\_SCENE** (1)" in text
    assert board["allowed_mentions"] == {"parse": []}
    pusher = Pusher(bot, session)
    for n in range(40):  # a shift change
        unit = {"id": 100 + n, "status": 2, "data": {"unitNum": f"S-{n:02}", "name": f"Officer {n}"}}
        assert await pusher.send("EVENT_UNIT_LOGIN", {"unit": unit, "isDispatch": False}) == (200, "ok")
    await pusher.send("EVENT_UNIT_STATUS", {"identIds": 21, "status": 1})  # a scalar, as the docs show it
    await pusher.send("EVENT_UNIT_STATUS", {"units": [{"id": 101, "status": 4, "data": {"unitNum": "S-01"}}]})
    await pusher.send("EVENT_DISPATCH_UNIT_ATTACH", {"callId": 1777, "idents": [22, 100]})
    await pusher.send("EVENT_DISPATCH_UNIT_DETACH", {"callId": 1777, "ident": 100})
    await pusher.send("EVENT_UNIT_LOGOUT", {"identId": 23})
    assert edits(discord_api, BOARD) == []  # within the window: nothing yet, however many changes
    await board_settled(bot)
    (edit,) = edits(discord_api, BOARD)  # 43 changes, one edit
    text = edit["embeds"][0]["description"]
    assert "**BUSY** (1)\n• **1A-12** · J. Smith · LSPD" in text
    assert "**2B-07** · A. Jones · BCSO · on call #1777" in text
    assert "R. Diaz" not in text and "**S-39** · Officer 39" in text
    assert text.endswith("**ON\\_SCENE** (1)\n• **S-01**") and "**S-00** · Officer 0\n" in text  # detached
    assert edit["embeds"][0]["footer"]["text"] == "42 on duty · page 1 of 1"
    assert len(posts(discord_api, BOARD)) == 1
    await pusher.send("EVENT_DISPATCH_CLOSED", {"callIds": [1777]})  # its units are on no call any more
    await board_settled(bot)
    assert "**2B-07** · A. Jones · BCSO\n" in edits(discord_api, BOARD)[-1]["embeds"][0]["description"]


async def test_a_board_of_150_units_fits_discords_limits_and_shrinks_back(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    for n in range(150):
        cad.add_unit(1000 + n, f"{n:03}-ADAM-{n:03}", f"Officer Number {n} of the night", "San Andreas Highway Patrol")
    cad.set_panic(1042)
    bot = await units_bot(alerts=[])
    await poll(bot, clock)  # the first 100
    await poll(bot, clock)  # the other 50: the sweep is whole
    await board_settled(bot)
    pages = discord_api.channel_messages(BOARD)
    assert len(pages) >= 2
    for page in pages:
        assert message_errors(page) == {}
        assert len(page["embeds"][0]["description"]) <= PAGE_BUDGET
    described = "\n".join(p["embeds"][0]["description"] for p in pages)
    assert described.count("• ") == 150 and described.startswith("**🚨 PANIC** (1)")
    assert pages[-1]["embeds"][0]["footer"]["text"] == f"150 on duty · page {len(pages)} of {len(pages)}"
    for n in range(140):
        cad.log_off(1000 + n)
    await poll(bot, clock)  # one page of 10: a whole sweep
    await board_settled(bot)
    assert len(discord_api.channel_messages(BOARD)) == 1  # the pages it no longer needs are deleted
    assert "10 on duty" in discord_api.channel_messages(BOARD)[0]["embeds"][0]["footer"]["text"]


async def test_a_board_beyond_its_pages_is_summarised(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, session: aiohttp.ClientSession, clock: Clock
) -> None:
    bot = await units_bot(alerts=[], push=push_settings())
    await poll(bot, clock)
    pusher = Pusher(bot, session)
    units = [{"id": 5000 + n, "status": 2, "data": {"unitNum": "X" * 20, "name": "N" * 60}} for n in range(400)]
    for start in range(0, 400, MAX_UNITS_PER_EVENT):  # an event carries at most a page of units
        await pusher.send("EVENT_UNIT_UPDATE", {"units": units[start : start + MAX_UNITS_PER_EVENT]})
    await board_settled(bot)
    pages = posts(discord_api, BOARD)
    assert len(pages) == 5 and all(message_errors(p) == {} for p in pages)
    assert "more units on duty, not listed" in pages[-1]["embeds"][0]["description"]


# --- the budget ----------------------------------------------------------------------------------------
async def test_the_units_polls_keep_to_their_budget_and_leave_the_game_server_its_share(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock, session: aiohttp.ClientSession
) -> None:
    squad(cad)
    cad.limits["get_active_units"] = 3  # Sonoran: 3 a minute per key, shared with the game server
    bot = await units_bot(sonoran={"rate_limits": {**GENEROUS_LIMITS, "get_active_units": 1}})
    game_server = {"Authorization": f"Bearer {API_KEY}", "User-Agent": "sonorancad-fivem"}
    for _ in range(5):
        clock.minute()
        cad.reset_window()
        async with session.get(f"{cad.url}/v2/emergency/servers/1/units", headers=game_server) as answer:
            assert answer.status == 200  # the game server's own minute poll
        await units_of(bot).poll_once()
        units_of(bot).poll_soon()  # /panic asks for another read at once: the budget says no
        await units_of(bot).poll_once()
        with pytest.raises(RateLimited):
            await bot.sonoran.get_units(1)
    ours = [
        r for r in cad.requests if r.operation == "get_active_units" and "fivem" not in r.headers.get("User-Agent", "")
    ]
    assert len(ours) == 5  # one a minute, whatever asked


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_a_units_list_in_a_wrapper_reads_as_a_plain_one(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    squad(cad)
    cad.units_wrapped = True  # `{"units": [...]}`, which the FiveM code copes with beside the documented array
    bot = await units_bot()
    await poll(bot, clock)
    await board_settled(bot)
    (board,) = posts(discord_api, BOARD)
    assert board["embeds"][0]["footer"]["text"] == "3 on duty · page 1 of 1"


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("EVENT_UNIT_PANIC", {"identIds": [7], "isPanic": True}, PanicChanged((7,), True)),
        ("EVENT_UNIT_PANIC", {"identId": "7", "isPanic": "false"}, PanicChanged((7,), False)),
        ("EVENT_UNIT_PANIC", {"identIds": None, "identId": 7, "isPanic": 1}, PanicChanged((7,), True)),
        ("EVENT_UNIT_PANIC", {"identIds": [7], "isPanic": "maybe"}, Ignored("EVENT_UNIT_PANIC")),
        ("EVENT_UNIT_PANIC", {"identIds": [7, 8], "identId": 9, "isPanic": True}, PanicChanged((7, 8, 9), True)),
        ("EVENT_UNIT_PANIC", {"identIds": [7], "identId": 7, "isPanic": True}, PanicChanged((7,), True)),
        (
            "EVENT_UNIT_LOGIN",
            {"unit": {"id": 7}, "isDispatch": True},
            UnitsOnDuty((Unit.model_validate({"id": 7, "isDispatch": True}),)),
        ),
        ("EVENT_UNIT_STATUS", {"identIds": 7, "status": 3}, StatusChanged((7,), 3)),
        ("EVENT_UNIT_STATUS", {"identIds": [7], "status": True}, Ignored("EVENT_UNIT_STATUS")),
        ("EVENT_UNIT_LOGOUT", {"identId": 7}, UnitsOffDuty((7,))),
        ("EVENT_UNIT_LOGIN", {"unit": {"id": 7, "data": "junk"}}, UnitsOnDuty((Unit(id=7),))),
        ("EVENT_UNIT_LOGIN", {"unit": {"id": 2**70}}, Ignored("EVENT_UNIT_LOGIN")),
        ("EVENT_UNIT_UPDATE", {"units": [{"id": 7}, {"id": "x"}, 5]}, UnitsOnDuty((Unit(id=7),))),
        ("EVENT_UNIT_GROUP_ADD", {"identId": 7, "groupName": "Alpha"}, Ignored("EVENT_UNIT_GROUP_ADD")),
    ],
)
def test_unit_events_are_read_leniently(kind: str, data: dict[str, Any], expected: object) -> None:
    envelope = read_envelope(json.dumps({"key": API_KEY, "type": kind, "data": data}))
    assert list(events_of(envelope)) == [expected]


def test_no_units_polls_without_a_board_or_an_alert() -> None:
    from .helpers import make_settings

    settings = make_settings("http://127.0.0.1:9", feeds=[{"channel_id": 1}])
    assert settings.unit_server_ids == []
    settings = make_settings("http://127.0.0.1:9", boards=[{"channel_id": 5, "server_id": 2}])
    assert settings.unit_server_ids == [2] and settings.event_server_ids == [2]


# --- commands ----------------------------------------------------------------------------------------------
async def test_units_shows_the_board_only_to_the_member_without_a_cad_request(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    squad(cad)
    bot = await units_bot()
    await dispatch_interaction(bot, slash("units"))
    assert "has not read the units list yet" in last_text(discord_api)
    await poll(bot, clock)
    before = len(cad.requests)
    await dispatch_interaction(bot, slash("units"))
    reply = discord_api.sent("POST", r"/interactions/\d+/[^/]+/callback$")[-1]["data"]
    assert reply["flags"] & 64 and "J. Smith" in reply["embeds"][0]["description"]
    assert len(cad.requests) == before
    await dispatch_interaction(bot, slash("units", {"server": 2}))
    assert "does not read the units of CAD server 2" in last_text(discord_api)


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_status_and_panic_on_v2_target_the_member_and_are_audited(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    cad.add_account(USER_ID, units=())
    cad.add_unit(31, "4C-01", "Tester", discord=USER_ID)
    bot = await units_bot(audit={"channel_id": AUDIT})
    await dispatch_interaction(bot, slash("status", {"status": "ENROUTE"}))
    assert "status is now ENROUTE" in discord_api.replies()[-1]["content"]
    assert cad.servers[1].units[31]["status"] == 3
    (request,) = [r for r in cad.requests if r.operation == "unit_status"]
    assert request.method == "PATCH" and request.body == {"discord": USER_ID, "status": 3}

    await dispatch_interaction(bot, slash("panic"))
    assert "Turn on the panic" in last_text(discord_api) and not cad.servers[1].units[31]["isPanic"]
    await confirm(bot, discord_api)
    assert cad.servers[1].units[31]["isPanic"] is True
    await poll(bot, clock)  # Sonoran sends no event for it: the units list finds it
    (alert,) = alert_posts(discord_api)
    assert alert["content"].endswith("PANIC: 4C-01 Tester")
    await dispatch_interaction(bot, slash("panic", {"state": "off"}))
    assert cad.servers[1].units[31]["isPanic"] is False
    assert bot.audit is not None and await bot.audit.flush()
    titles = [e["title"] for body in discord_api.sent("POST", rf"/channels/{AUDIT}/messages$") for e in body["embeds"]]
    assert titles == ["/status: done", "/panic on: done", "/panic off: done"]


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_status_and_panic_refusals_read_as_attach_does(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await units_bot(audit={"channel_id": AUDIT})
    await dispatch_interaction(bot, slash("status", {"status": "AVAILABLE"}))
    assert "not linked to a CAD account" in discord_api.replies()[-1]["content"]
    cad.add_account(USER_ID, units=())
    await dispatch_interaction(bot, slash("panic", {"state": "off"}))
    assert "no unit on duty" in discord_api.replies()[-1]["content"]
    await dispatch_interaction(bot, slash("status", {"status": "ASLEEP"}))  # never offered
    assert "Choose a status from the list" in last_text(discord_api)
    assert [r.operation for r in cad.requests].count("unit_status") == 1
    cad.plan = 1
    await dispatch_interaction(bot, slash("status", {"status": "BUSY"}))
    assert "higher Sonoran plan" in discord_api.replies()[-1]["content"]
    assert bot.audit is not None and await bot.audit.flush()
    titles = [e["title"] for body in discord_api.sent("POST", rf"/channels/{AUDIT}/messages$") for e in body["embeds"]]
    assert titles == ["/status: failed", "/panic off: failed", "/status: refused", "/status: failed"]


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_status_choices_are_the_communitys_labels(units_bot: BotFactory, discord_api: FakeDiscord) -> None:
    from .doubles.discord_fakes import autocomplete

    labels = ["10-7 Off", "10-6 Busy", "10-8 Available", "En route", "On scene"]
    bot = await units_bot(units={"status_labels": labels})
    payload = autocomplete("status", "status", "10-")
    payload["data"]["options"][-1]["type"] = 3
    await dispatch_interaction(bot, payload)
    choices = discord_api.sent("POST", r"/interactions/\d+/[^/]+/callback$")[-1]["data"]["choices"]
    assert [c["name"] for c in choices] == labels[:3]


@pytest.mark.parametrize("api_version", [1], ids=["v1"])
async def test_on_v1_status_and_panic_are_absent_and_the_board_works(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    squad(cad)
    bot = await units_bot()
    names = {command.name for command in bot.tree.get_commands()}
    assert "units" in names and not {"status", "panic"} & names
    await poll(bot, clock)
    await board_settled(bot)
    (board,) = posts(discord_api, BOARD)
    assert "J. Smith" in board["embeds"][0]["description"]
    assert [r.path for r in cad.requests if r.operation == "get_active_units"] == ["/emergency/get_active_units"]


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_config_refuses_an_alert_in_the_audit_channel_and_a_units_poll_over_budget(
    tmp_path: Path, api_version: int
) -> None:
    from bot.config import ConfigError, load_settings

    path = tmp_path / "config.toml"
    base = (
        '[discord]\ntoken = "x.y.z"\n[sonoran]\ncommunity_id = "c"\napi_key = "k"\n'
        "[audit]\nchannel_id = 5\n[[alerts]]\nchannel_id = 5\nping_role_id = 9\n"
    )
    path.write_text(base)
    with pytest.raises(ConfigError, match=r"audit\.channel_id 5 is also a panic alert's channel_id"):
        load_settings(path, environ={})
    path.write_text(
        base.replace("channel_id = 5\n[[alerts]]", "channel_id = 6\n[[alerts]]") + "[units]\npoll_seconds = 60\n"
        "[sonoran.rate_limits]\nget_active_units = 3\n"
    )
    with pytest.raises(ConfigError, match="get_active_units"):
        load_settings(path, environ={})


async def test_a_board_that_cannot_be_drawn_holds_back_nothing_else_in_its_channel(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a value the renderer never met")

    monkeypatch.setattr("bot.units.engine.board_pages", broken)
    squad(cad)
    bot = await units_bot(feeds=[{"server_id": 1, "channel_id": BOARD}], alerts=[])
    await poll(bot, clock)
    await board_settled(bot)
    call_id = cad.add_911("Anna", "Grove St", "Fire")
    await feed_of(bot).poll_once()
    (post,) = posts(discord_api, BOARD)  # the call, in the board's channel; no board
    assert f"911 call #{call_id}" in post["embeds"][0]["title"]


# --- read as Sonoran writes (issue 26) ----------------------------------------------------------------------
def board_text(discord_api: FakeDiscord) -> str:
    """What the board's messages show now, pages joined."""
    return "\n".join(m["embeds"][0]["description"] for m in discord_api.channel_messages(BOARD))


async def test_a_dispatcher_logging_in_is_not_on_the_board_by_push_or_by_poll(
    pushed: tuple[DispatchBot, Pusher], cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    bot, pusher = pushed
    desk = {"id": 77, "status": 2, "data": {"unitNum": "DISP-1", "name": "Dispatch Dana"}}
    assert await pusher.send("EVENT_UNIT_LOGIN", {"unit": desk, "isDispatch": True}) == (200, "ok")  # beside `unit`
    officer = {"id": 78, "status": 2, "data": {"unitNum": "1A-99", "name": "Officer Olga"}}
    assert await pusher.send("EVENT_UNIT_LOGIN", {"unit": officer, "isDispatch": False}) == (200, "ok")
    await board_settled(bot)
    assert "Officer Olga" in board_text(discord_api) and "Dispatch Dana" not in board_text(discord_api)
    cad.add_unit(79, "DISP-2", "Dispatch Dora")["isDispatch"] = True  # the list leaves dispatchers out
    cad.add_unit(78, "1A-99", "Officer Olga")
    await poll(bot, clock)
    await board_settled(bot)
    assert "Dispatch D" not in board_text(discord_api) and "Officer Olga" in board_text(discord_api)


async def test_one_unreadable_row_hides_no_unit_after_it(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    for n in range(150):
        cad.add_unit(1000 + n, f"U-{n:03}", f"Officer {n}", panic=n == 120)
    cad.servers[1].units[1010]["id"] = "not a number"  # one row of the first page cannot be read
    bot = await units_bot()
    await poll(bot, clock)  # 100 rows, 99 units: not the last page
    await poll(bot, clock)  # the other 50
    roster = units_of(bot).rosters[1]
    assert roster.complete and len(roster.units) == 149 and 1120 in roster.units
    offsets = [
        int(r.query["offset"] if r.query else r.body["data"][0]["offset"])
        for r in cad.requests
        if r.operation == "get_active_units"
    ]
    assert offsets == [0, 100]
    (alert,) = alert_posts(discord_api)  # the unit after the bad row is on duty, its panic alerted
    assert alert["content"].endswith("U-120 Officer 120")
    await poll(bot, clock)  # a new sweep: nothing cleared
    assert not any("cleared" in e["embeds"][0]["title"] for e in edits(discord_api, ALERTS))


async def test_a_panic_event_with_identids_and_identid_alerts_both(
    pushed: tuple[DispatchBot, Pusher], discord_api: FakeDiscord
) -> None:
    _, pusher = pushed
    assert await pusher.send("EVENT_UNIT_PANIC", {"identIds": [21], "identId": 22, "isPanic": True}) == (200, "ok")
    assert sorted(a["content"].split("PANIC: ")[1] for a in alert_posts(discord_api)) == [
        "1A-12 J. Smith",
        "2B-07 A. Jones",
    ]


async def test_status_and_panic_events_for_units_never_seen_make_no_blank_units(
    pushed: tuple[DispatchBot, Pusher], cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    bot, pusher = pushed
    await board_settled(bot)
    assert await pusher.send("EVENT_UNIT_PANIC", {"identIds": [990], "isPanic": True}) == (200, "ok")
    assert await pusher.send("EVENT_UNIT_STATUS", {"identIds": [991], "status": 3}) == (200, "ok")
    await board_settled(bot)
    assert alert_posts(discord_api) == []
    assert "#990" not in board_text(discord_api) and "#991" not in board_text(discord_api)
    assert len(units_of(bot).rosters[1].units) == 3
    # the list brings the unit in, as it is (its panic included)
    cad.add_unit(990, "9Z-90", "New Guy", panic=True)
    await poll(bot, clock)
    (alert,) = alert_posts(discord_api)
    assert alert["content"].endswith("PANIC: 9Z-90 New Guy")


async def test_unit_events_in_volume_are_bounded_and_the_roster_forgets_the_units_gone(
    pushed: tuple[DispatchBot, Pusher], discord_api: FakeDiscord, clock: Clock
) -> None:
    bot, pusher = pushed
    roster = units_of(bot).rosters[1]
    for n in range(30):  # 30 logouts of 20,000 ids each
        ids = list(range(100_000 + n * 20_000, 120_000 + n * 20_000))
        assert await pusher.send("EVENT_UNIT_LOGOUT", {"identIds": ids}) == (200, "ok")
    assert len(roster._gone) <= 30 * MAX_IDS_PER_EVENT
    units = [{"id": 50_000 + n, "status": 2} for n in range(1_000)]
    assert await pusher.send("EVENT_UNIT_UPDATE", {"units": units}) == (200, "ok")
    assert len(roster.units) == 3 + MAX_UNITS_PER_EVENT
    await poll(bot, clock)  # a page asked after the logouts: they matter to no page any more
    assert roster._gone == {} and set(roster._changed_at) <= set(roster.units)


# --- the sandbox CAD refuses what Sonoran refuses ------------------------------------------------------------
V2_AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def v2_units(session: aiohttp.ClientSession, cad: FakeCad, **query: str) -> tuple[int, Any]:
    async with session.get(f"{cad.url}/v2/emergency/servers/1/units", params=query, headers=V2_AUTH) as answer:
        return answer.status, await answer.json(content_type=None)


async def v1_units(session: aiohttp.ClientSession, cad: FakeCad, **data: Any) -> tuple[int, Any]:
    body = {"id": COMMUNITY_ID, "key": API_KEY, "type": "GET_ACTIVE_UNITS", "data": [{"serverId": 1, **data}]}
    async with session.post(f"{cad.url}/emergency/get_active_units", json=body) as answer:
        text = await answer.text()
        return answer.status, json.loads(text) if answer.status == 200 else text


async def test_the_sandbox_units_list_honours_only_units_include_offline_and_limit(
    cad: FakeCad, session: aiohttp.ClientSession
) -> None:
    cad.limits.pop("get_active_units")  # a dozen reads in a moment: Sonoran's 3 a minute is another test's
    squad(cad)
    cad.add_unit(24, "DISP", "Dana")["isDispatch"] = True
    cad.log_off(23)
    status, units = await v2_units(session, cad)
    assert status == 200 and [u["id"] for u in units] == [21, 22]  # the defaults: units on duty only
    _, units = await v2_units(session, cad, onlyUnits="false", includeOffline="true")
    assert [(u["id"], u["status"]) for u in units] == [(21, 2), (22, 3), (23, 100), (24, 2)]
    _, units = await v2_units(session, cad, limit="1", offset="1")
    assert [u["id"] for u in units] == [22]
    _, units = await v1_units(session, cad, onlyUnits=False, includeOffline=False)
    assert [u["id"] for u in units] == [21, 22, 24]
    for bad in ({"limit": "abc"}, {"limit": "500"}, {"limit": "0"}, {"offset": "-1"}, {"onlyUnits": "yes"}):
        status, problem = await v2_units(session, cad, **bad)
        assert status == 400 and problem["status"] == 400 and problem["traceId"], bad
    assert await v1_units(session, cad, limit="abc") == (400, Assumed.V1_BAD_VALUE)
    assert await v1_units(session, cad, limit=500) == (400, Assumed.V1_BAD_VALUE)


async def test_the_sandbox_refuses_statuses_targets_and_plans_as_sonoran_does(
    cad: FakeCad, session: aiohttp.ClientSession
) -> None:
    cad.add_account(USER_ID, units=(31,))
    cad.add_unit(31, "4C-01", "Tester")
    url = f"{cad.url}/v2/emergency/servers/1/units/status"

    async def patch(body: dict[str, Any], path: str = url) -> tuple[int, Any]:
        async with session.patch(path, json=body, headers=V2_AUTH) as answer:
            return answer.status, await answer.json(content_type=None)

    for status in (-1, 5, 100, True, "2"):
        code, problem = await patch({"discord": USER_ID, "status": status})
        assert (code, problem["detail"]) == (400, Assumed.BAD_STATUS), status
    assert cad.servers[1].units[31]["status"] == 2  # -1 is not ON_SCENE through a negative index
    cad.unit_statuses.add(5)  # a community that configured one more
    assert await patch({"discord": USER_ID, "status": 5}) == (200, {"updated": 1, "status": 5})
    code, problem = await patch({"discord": int(USER_ID), "status": 1})
    assert (code, problem["detail"]) == (400, Assumed.DISCORD_TEXT)
    code, problem = await patch({"discord": USER_ID, "identIds": [31], "status": 1})
    assert (code, problem["detail"]) == (400, Assumed.ONE_TARGET)
    code, problem = await patch({"discord": USER_ID, "isPanic": "yes"}, url.replace("status", "panic"))
    assert code == 400
    cad.plan = 1
    code, problem = await patch({"discord": USER_ID, "status": 1})
    assert code == 402 and problem["type"] == "https://httpstatuses.com/402"  # no invented error type


async def test_the_sandbox_keeps_sonorans_rate_limits_by_default(session: aiohttp.ClientSession) -> None:
    now = [0.0]
    cad = FakeCad(clock=lambda: now[0])
    await cad.start()
    try:
        assert cad.limits == SONORAN_LIMITS and cad.limits["get_active_units"] == 3
        assert [(await v2_units(session, cad))[0] for _ in range(4)] == [200, 200, 200, 429]
        async with session.get(f"{cad.url}/v2/emergency/servers/1/units", headers=V2_AUTH) as answer:
            assert answer.status == 429 and answer.headers["Retry-After"] == "60"
            assert await answer.json() == {"message": "API rate limit exceeded", "request_id": "abc123"}
        now[0] += 30
        assert (await v2_units(session, cad))[0] == 429
        now[0] += 30  # a minute after the first three
        assert (await v2_units(session, cad))[0] == 200
    finally:
        await cad.close()


# --- /status, /panic and /units: answers, budgets, shares and rights (issue 26) ------------------------------
def said(discord_api: FakeDiscord) -> str:
    """The text of the last answer to an interaction: a reply, or a deferred one's followup."""
    last = discord_api.replies()[-1]
    return str((last.get("data") or last).get("content", ""))


def problem_body(status: int, detail: str) -> str:
    return json.dumps({"type": f"https://httpstatuses.com/{status}", "title": "x", "status": status, "detail": detail})


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_updated_zero_tells_the_member_nothing_changed(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    cad.add_account(USER_ID, units=())
    cad.add_unit(31, "4C-01", "Tester", discord=USER_ID)
    bot = await units_bot()
    json_reply = {"status": 200, "content_type": "application/json"}
    cad.fail_next("unit_status", body='{"updated": 0, "status": "BUSY"}', **json_reply)
    await dispatch_interaction(bot, slash("status", {"status": "BUSY"}))
    assert "changed none of your units" in said(discord_api)
    cad.fail_next("unit_panic", body='{"updated": 0, "isPanic": false}', **json_reply)
    await dispatch_interaction(bot, slash("panic", {"state": "off"}))
    assert "changed none of your units: their panic was already off" in said(discord_api)
    await dispatch_interaction(bot, slash("status", {"status": "ENROUTE"}))  # the CAD's own answer: 1 updated
    assert "status is now ENROUTE" in said(discord_api)


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_a_404_on_status_or_panic_not_about_the_server_is_not_an_unknown_server(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    cad.add_account(USER_ID, units=(31,))
    bot = await units_bot(boards=[*BOARD_SETTINGS, {"server_id": 3, "channel_id": 4009}])
    for operation, command in (("unit_status", slash("status", {"status": "BUSY"})), ("unit_panic", None)):
        body = problem_body(404, "Target not found.")
        cad.fail_next(operation, status=404, body=body, content_type="application/problem+json")
        await dispatch_interaction(bot, command or slash("panic", {"state": "off"}))
        reply = said(discord_api)
        assert "The CAD refused the request: Target not found." in reply and "not configured" not in reply
    await dispatch_interaction(bot, slash("status", {"status": "AVAILABLE", "server": 3}))  # configured, not in the CAD
    assert "That CAD server ID is not configured in the CAD" in said(discord_api)


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_a_status_sonoran_does_not_take_is_refused_before_any_request(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import UnitSettings

    cad.add_account(USER_ID, units=(31,))
    bot = await units_bot()
    assert list(bot.settings.units.status_values) == [0, 1, 2, 3, 4]
    assert list(UnitSettings(status_labels=[f"S{n}" for n in range(7)]).status_values) == list(range(7))
    monkeypatch.setattr(UnitSettings, "status_values", property(lambda self: range(3)))  # a bug offering 3
    await dispatch_interaction(bot, slash("status", {"status": "ENROUTE"}))
    assert "Choose a status from the list" in said(discord_api)
    assert "unit_status" not in cad.operations()


def test_status_and_panic_budgets_leave_the_game_server_a_third(tmp_path: Path) -> None:
    from bot.config import ConfigError, RateLimits, load_settings

    assert (RateLimits().unit_status, RateLimits().unit_panic) == (20, 13)  # of Sonoran's 30 and 20
    path = tmp_path / "config.toml"
    base = '[discord]\ntoken = "x.y.z"\n[sonoran]\ncommunity_id = "c"\napi_key = "k"\n[sonoran.rate_limits]\n'
    path.write_text(base + "unit_status = 30\nunit_panic = 20\n")  # all of it, if the admin says so
    assert load_settings(path, environ={}).cad.rate_limits.unit_panic == 20
    path.write_text(base + "unit_panic = 21\n")
    with pytest.raises(ConfigError, match="unit_panic"):
        load_settings(path, environ={})


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_one_member_cannot_spend_everyones_panic_budget(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    cad.add_account("700000000000000009", units=(41,))
    cad.add_unit(41, "5E-01", "Real Officer")
    bot = await units_bot(units={"member_cooldown_seconds": 0})  # the share alone: one write after another
    share = bot.community.desk.unit_writes["panic"].per_minute
    assert share == 20 // 4  # a quarter of the bot's panic budget (20 here)
    for _ in range(20):  # a member with no linked account, twenty times
        await dispatch_interaction(bot, slash("panic", {"state": "off"}))
    assert cad.operations().count("unit_panic") == share
    assert "Slow down: you can do that again in" in said(discord_api)
    await dispatch_interaction(bot, slash("panic", user_id="700000000000000009"))  # a real panic still goes
    await confirm(bot, discord_api, user_id="700000000000000009")
    assert cad.servers[1].units[41]["isPanic"] is True


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_the_same_write_twice_waits_and_refusals_of_the_bots_own_spend_nothing(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    members = [USER_ID, "700000000000000002", "700000000000000003"]
    for n, member in enumerate(members):
        cad.add_account(member, units=(31 + n,))
        cad.add_unit(31 + n, f"4C-0{n}", "Tester")
    bot = await units_bot(sonoran={"rate_limits": {**GENEROUS_LIMITS, "unit_status": 2}})
    await dispatch_interaction(bot, slash("status", {"status": "BUSY"}))
    await dispatch_interaction(bot, slash("status", {"status": "BUSY"}))  # the same again at once: a cooldown
    assert "Slow down" in said(discord_api)
    await dispatch_interaction(bot, slash("status", {"status": "BUSY"}, user_id=members[1]))  # the budget's 2nd
    await dispatch_interaction(bot, slash("status", {"status": "BUSY"}, user_id=members[2]))  # the bot's budget: no
    assert "rate-limiting" in said(discord_api)
    await dispatch_interaction(bot, slash("status", {"status": "ASLEEP"}, user_id=members[2]))  # never offered
    assert cad.operations().count("unit_status") == 2
    spent = bot.community.desk.unit_writes["status"]._spent
    assert int(members[2]) not in spent  # refused by the bot twice: nothing of the member's share spent


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
async def test_panic_status_and_units_apply_the_same_gates_as_the_other_commands(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    squad(cad)
    cad.add_account(USER_ID, units=(21,))
    blocked = "880000000000000001"
    bot = await units_bot(
        audit={"channel_id": AUDIT},
        commands={"blocked_role_ids": [int(blocked)]},
        boards=[],  # alert-only: no board shows these units to everyone
    )
    await dispatch_interaction(bot, slash("panic", {"state": "on"}, roles=[blocked]))
    assert "one of your roles blocks it" in said(discord_api)
    await dispatch_interaction(bot, slash("status", {"status": "BUSY", "server": 9999}))
    assert "not set up for CAD server 9999" in said(discord_api)
    await dispatch_interaction(bot, slash("panic", {"state": "off", "server": 9999}))
    assert "not set up for CAD server 9999" in said(discord_api)
    assert not {"unit_panic", "unit_status"} & set(cad.operations())
    await poll(bot, clock)
    await dispatch_interaction(bot, slash("units"))
    assert "Only dispatchers" in said(discord_api)
    await dispatch_interaction(bot, slash("units", permissions=MANAGE_GUILD))
    reply = discord_api.sent("POST", r"/interactions/\d+/[^/]+/callback$")[-1]["data"]
    assert "J. Smith" in reply["embeds"][0]["description"]
    assert bot.audit is not None and await bot.audit.flush()
    titles = [e["title"] for body in discord_api.sent("POST", rf"/channels/{AUDIT}/messages$") for e in body["embeds"]]
    assert titles == ["/panic: refused", "/status: refused", "/panic: refused"]


async def test_units_has_a_cooldown_per_member(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    squad(cad)
    bot = await units_bot()
    await poll(bot, clock)
    await dispatch_interaction(bot, slash("units"))
    await dispatch_interaction(bot, slash("units"))
    assert "Slow down: you can do that again in 10 s." in said(discord_api)
    await dispatch_interaction(bot, slash("units", user_id="700000000000000002"))  # another member: no wait
    reply = discord_api.sent("POST", r"/interactions/\d+/[^/]+/callback$")[-1]["data"]
    assert "J. Smith" in reply["embeds"][0]["description"]


# --- what a dispatcher sees (issue 26) -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["push", "poll"])
async def test_an_alert_shows_the_call_as_soon_as_the_call_list_says_it(
    units_bot: BotFactory,
    cad: FakeCad,
    discord_api: FakeDiscord,
    session: aiohttp.ClientSession,
    clock: Clock,
    path: str,
) -> None:
    squad(cad)
    call_id = cad.add_dispatch("Shots fired", idents=[22])
    feeds = [{"server_id": 1, "channel_id": 4010, "calls": [], "dispatch": True}]
    bot = await units_bot(feeds=feeds, push=push_settings())
    await poll(bot, clock)
    if path == "push":
        await Pusher(bot, session).send("EVENT_UNIT_PANIC", {"identIds": [22], "isPanic": True})
    else:
        cad.set_panic(22)
        await poll(bot, clock)
    (alert,) = alert_posts(discord_api)  # raised before the bot read any call list
    assert {f["name"]: f["value"] for f in alert["embeds"][0]["fields"]}["Call"] == "none"
    await feed_of(bot).poll_once()  # the feed reads the call list: the unit is on a call
    fields = {f["name"]: f["value"] for f in edits(discord_api, ALERTS)[-1]["embeds"][0]["fields"]}
    assert fields["Call"] == f"\\#{call_id} · Shots fired · Mission Row"
    assert len(alert_posts(discord_api)) == 1


@pytest.mark.parametrize("status", [429, 500])
async def test_the_board_follows_events_while_the_units_list_cannot_be_read(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, session: aiohttp.ClientSession, status: int
) -> None:
    squad(cad)
    bot = await units_bot(push=push_settings(), alerts=[])
    cad.fail_next("get_active_units", status=status, body='{"message": "API rate limit exceeded"}')
    await units_of(bot).poll_once()
    assert not units_of(bot).rosters[1].complete
    await board_settled(bot)
    assert posts(discord_api, BOARD) == []  # nothing known: no board (an empty one would be a lie)
    pusher = Pusher(bot, session)
    unit = {"id": 21, "status": 2, "data": {"unitNum": "1A-12", "name": "J. Smith"}}
    assert await pusher.send("EVENT_UNIT_LOGIN", {"unit": unit, "isDispatch": False}) == (200, "ok")
    await board_settled(bot)
    (board,) = discord_api.channel_messages(BOARD)
    assert board["embeds"][0]["description"].startswith("⚠️ Not yet confirmed by the CAD's units list")
    assert "J. Smith" in board["embeds"][0]["description"]
    assert board["embeds"][0]["footer"]["text"].endswith("not yet confirmed by the CAD's units list")
    units_of(bot).rosters[1].offset = 0
    cad.reset_window()
    await units_of(bot).poll_once()  # the list answers: the board is the CAD's, all three units
    await board_settled(bot)
    (board,) = discord_api.channel_messages(BOARD)
    assert (
        "Not yet confirmed" not in board["embeds"][0]["description"] and "R. Diaz" in board["embeds"][0]["description"]
    )
    assert board["embeds"][0]["footer"]["text"] == "3 on duty · page 1 of 1"


def test_a_board_of_100000_units_sorts_and_formats_only_what_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.units import render

    units = {n: Unit(id=n, status=n % 5, is_panic=n % 9_999 == 0) for n in range(100_000)}
    formatted: list[int] = []
    real = render._unit_line

    def counting(unit: Unit, call_id: int | None) -> str:
        formatted.append(unit.id)
        return real(unit, call_id)

    monkeypatch.setattr(render, "_unit_line", counting)
    pages = render.board_pages(1, units, {}, lambda status: f"S{status}")
    assert len(pages) == render.MAX_PAGES and len(formatted) <= render.MAX_LINES
    described = "\n".join(str(p.description) for p in pages)
    assert described.startswith("**🚨 PANIC** (11)\n• **#0**")
    listed = described.count("• ")
    assert described.endswith(f"… and {100_000 - listed} more units on duty, not listed (Discord's limits)")
    assert pages[-1].footer.text == "100000 on duty · page 5 of 5"


def test_a_board_of_units_with_thousands_of_statuses_has_a_dozen_headings() -> None:
    """A status is any code below 2^31: 100,000 distinct ones would be 100,000 headings to draw."""
    from bot.units import render

    units = {n: Unit(id=n, status=n) for n in range(100_000)}
    lines = render.board_lines(units, {}, lambda status: f"S{status}")
    headings = [line for line in lines if line.startswith("**")]
    assert len(headings) == render.MAX_STATUS_GROUPS + 1
    assert headings[0] == "**S0** (1)" and headings[-1] == f"**Other statuses** ({100_000 - render.MAX_STATUS_GROUPS})"


def test_a_dispatch_call_is_read_with_at_most_a_hundred_units() -> None:
    from bot.sonoran import DispatchCall
    from bot.sonoran.models import MAX_UNITS_ON_CALL

    call = DispatchCall.model_validate({"callId": 7, "idents": list(range(150_000))})
    assert call.idents == list(range(MAX_UNITS_ON_CALL))


# --- a panic storm (issue 26) ------------------------------------------------------------------------------------
def panic_posts(discord_api: FakeDiscord) -> list[dict[str, Any]]:
    return [p for p in alert_posts(discord_api) if "PANIC" in (p.get("content") or "")]


def pings(discord_api: FakeDiscord) -> int:
    """Alert posts that ping the role (an edit pings nobody)."""
    return sum(1 for p in panic_posts(discord_api) if p["allowed_mentions"].get("roles") == [ROLE])


async def test_a_panic_storm_by_push_opens_five_alerts_and_one_summary_and_a_911_call_is_not_behind_it(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, session: aiohttp.ClientSession, clock: Clock
) -> None:
    from .test_push import call_911

    bot = await units_bot(push=push_settings(), feeds=[{"server_id": 1, "channel_id": ALERTS}])
    await poll(bot, clock)
    pusher = Pusher(bot, session)
    units = [{"id": 300 + n, "status": 2, "data": {"unitNum": f"S-{n:02}", "name": f"Officer {n}"}} for n in range(70)]
    await pusher.send("EVENT_UNIT_UPDATE", {"units": units})
    gate = discord_api.gates[str(ALERTS)] = asyncio.Event()  # Discord holds the channel's first write
    storm = pusher.send("EVENT_UNIT_PANIC", {"identIds": [300 + n for n in range(60)], "isPanic": True})
    call = pusher.send("EVENT_911", {"call": call_911(4242)})
    task = asyncio.gather(storm, call)
    await asyncio.sleep(0.3)
    gate.set()
    assert list(await task) == [(200, "ok"), (200, "ok")]
    await feed_of(bot).settled()
    written = [m for m, channel, _ in discord_api.writes if channel == str(ALERTS)]
    made = discord_api.sent("POST", rf"/channels/{ALERTS}/messages$")
    order = ["911" if "911 call" in json.dumps(m.get("embeds")) else "alert" for m in made]
    assert order.index("911") <= 6 and len(written) == 7  # behind 6 alert posts at most, all of them
    alerts = panic_posts(discord_api)
    assert len(alerts) == 6 and pings(discord_api) == 6  # 5 alerts of their own, one summary: one ping each
    summary = alerts[-1]
    assert summary["content"] == f"<@&{ROLE}> PANIC: 55 more units"
    text = summary["embeds"][0]["description"]
    assert "**Still in panic (55)**" in text and "• S-59 Officer 59" in text and message_errors(summary) == {}
    # more panics within the minute: listed in the same summary, edited, nobody pinged again
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [360, 361], "isPanic": True})
    assert len(panic_posts(discord_api)) == 6
    edit = edits(discord_api, ALERTS)[-1]
    assert edit["content"] == f"<@&{ROLE}> PANIC: 57 more units" and edit["allowed_mentions"] == {"parse": []}
    # one of them clears, then presses again: listed as cleared, then in panic again (the cap is full)
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [310], "isPanic": False})
    assert "• S-10 Officer 10 (cleared)" in edits(discord_api, ALERTS)[-1]["embeds"][0]["description"]
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [310], "isPanic": True})
    text = edits(discord_api, ALERTS)[-1]["embeds"][0]["description"]
    assert "• S-10 Officer 10\n" in text and "**Still in panic (57)**" in text and len(panic_posts(discord_api)) == 6
    # a minute later the cap has room again
    clock.minute()
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [362], "isPanic": True})
    assert panic_posts(discord_api)[-1]["content"].endswith("PANIC: S-62 Officer 62")
    # all clear: the summary says so
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [300 + n for n in range(63)], "isPanic": False})
    titles = [e["embeds"][0]["title"] for e in edits(discord_api, ALERTS)]
    assert "Panics cleared: 57 more units" in titles


async def test_a_panic_storm_found_by_the_units_poll_is_capped_too_and_survives_a_restart(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, clock: Clock
) -> None:
    for n in range(30):
        cad.add_unit(500 + n, f"P-{n:02}", f"Officer {n}", panic=True)
    first = await units_bot(units={"max_alerts_per_minute": 3, "board_edit_seconds": 2})
    await poll(first, clock)
    alerts = alert_posts(discord_api)
    assert len(alerts) == 4 and alerts[-1]["content"].endswith("PANIC: 27 more units")
    await first.close()
    second = await units_bot(units={"max_alerts_per_minute": 3, "board_edit_seconds": 2})
    await poll(second, clock)
    assert len(alert_posts(discord_api)) == 4  # the stored summary is followed, not posted again
    for n in range(30):
        cad.set_panic(500 + n, False)
    await poll(second, clock)
    assert edits(discord_api, ALERTS)[-1]["embeds"][0]["title"] == "Panics cleared: 27 more units"


async def test_a_panic_after_the_summary_was_acknowledged_opens_a_new_summary_that_pings(
    units_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord, session: aiohttp.ClientSession, clock: Clock
) -> None:
    """An acknowledged summary takes no new names: they would join it in silence, under someone
    else's acknowledgement. A panic past the cap after the acknowledgement is a new summary, pinged."""
    bot = await units_bot(push=push_settings())
    await poll(bot, clock)
    pusher = Pusher(bot, session)
    units = [{"id": 300 + n, "status": 2, "data": {"unitNum": f"S-{n:02}", "name": f"Officer {n}"}} for n in range(20)]
    await pusher.send("EVENT_UNIT_UPDATE", {"units": units})
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [300 + n for n in range(8)], "isPanic": True})
    await feed_of(bot).settled()
    assert "3 more units" in panic_posts(discord_api)[-1]["content"] and pings(discord_api) == 6
    summary = discord_api.channel_messages(ALERTS)[-1]
    (acknowledge,) = [c["custom_id"] for c in components(summary)]
    await dispatch_interaction(bot, button(acknowledge, summary["id"], message=summary))
    await feed_of(bot).settled()
    acknowledged = discord_api.messages[summary["id"]]["embeds"][0]["description"]
    assert "Acknowledged by" in acknowledged
    await pusher.send("EVENT_UNIT_PANIC", {"identIds": [315], "isPanic": True})  # the same minute: past the cap
    await feed_of(bot).settled()
    assert pings(discord_api) == 7  # a new summary, pinging the role
    fresh = discord_api.channel_messages(ALERTS)[-1]
    assert fresh["id"] != summary["id"] and "S-15" in fresh["embeds"][0]["description"]
    assert "Acknowledged by" not in fresh["embeds"][0]["description"] and components(fresh)
    assert discord_api.messages[summary["id"]]["embeds"][0]["description"] == acknowledged  # untouched
