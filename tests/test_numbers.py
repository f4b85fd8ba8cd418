"""One bad number costs one call: every numeric field of calls, units and push events, given
1e400 (infinity to Python's json), NaN, negative and huge values, fractions, bools and numeric text,
through the poll path (the sandbox CAD over loopback, a feed cycle, the Discord double) and the push
path (the real listener over loopback). The rules are `bot/sonoran/numbers.py`'s."""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cards import CardButton, CardPicker, card_view
from bot.core import DispatchBot
from bot.posts import Post, PostKind, PostState
from bot.sonoran import BadReply, EmergencyCall, SonoranClient
from bot.sonoran.numbers import UNKNOWN, integer, loads, read_code, read_id
from bot.units.acknowledge import AcknowledgeButton

from .conftest import BotFactory
from .doubles.discord_fakes import FakeDiscord
from .doubles.fake_cad import API_KEY, FakeCad
from .helpers import GENEROUS_LIMITS
from .test_cards import components
from .test_feed import feed_of, posts
from .test_push import Pusher, push_settings
from .test_units import Clock, poll, units_of

CALLS = 6001  # every 911 call
DISPATCH = 6002  # every dispatch call
ALERTS = 6003  # panic alerts
BOARD = 6004  # the unit board
ROLE = 7770002
FEEDS: list[dict[str, Any]] = [
    {"server_id": 1, "channel_id": CALLS},
    {"server_id": 1, "channel_id": DISPATCH, "calls": [], "dispatch": True},
]
CODES = ("priority", "status", "origin")


class Raw(str):
    """A JSON token written as it is (`1e400`, `NaN`, 5,000 digits): what json.dumps cannot write."""


HUGE_DIGITS = Raw("9" * 5000)  # an integer Python refuses to convert (more than 4,300 digits)
WEIRD: list[Any] = [
    Raw("1e400"),
    Raw("-1e400"),
    Raw("NaN"),
    -1,
    -(2**70),
    2**70,
    0,
    2.5,
    True,
    "12",
    "abc",
    None,
    HUGE_DIGITS,
]


def to_json(value: Any) -> str:
    """`value` as JSON text, each Raw written as its token."""
    tokens: list[str] = []

    def mark(item: Any) -> Any:
        if isinstance(item, Raw):
            tokens.append(str(item))
            return f"@@raw{len(tokens) - 1}@@"
        if isinstance(item, dict):
            return {key: mark(v) for key, v in item.items()}
        if isinstance(item, list):
            return [mark(v) for v in item]
        return item

    text = json.dumps(mark(value))
    return re.sub(r'"@@raw(\d+)@@"', lambda m: tokens[int(m.group(1))], text)


def call_911(call_id: Any, **fields: Any) -> dict[str, Any]:
    call = {"callId": call_id, "isEmergency": True, "caller": "Anna", "location": "Grove St", "description": "Fire"}
    return {**call, "metaData": {"postal": "305"}, **fields}


def dispatch_call(call_id: Any, **fields: Any) -> dict[str, Any]:
    call = {"callId": call_id, "origin": 0, "status": 1, "priority": 2, "title": "Pursuit", "address": "Route 68"}
    return {**call, "postal": "101", "code": "10-80", "notes": [], "idents": [], "metaData": {}, **fields}


def unit(ident: Any, unit_num: str, **fields: Any) -> dict[str, Any]:
    data = {"unitNum": unit_num, "name": "J. Smith", "department": "LSPD"}
    return {"id": ident, "status": 2, "isPanic": False, "location": "Grove St", "data": data, **fields}


def call_list(*, emergency: list[Any] = (), active: list[Any] = (), closed: list[Any] = (), **extra: Any) -> str:  # type: ignore[assignment]
    return to_json(
        {"ActiveCalls": list(active), "EmergencyCalls": list(emergency), "ClosedCalls": list(closed), **extra}
    )


def posted_ids(discord_api: FakeDiscord, channel: int, since: int = 0) -> list[int]:
    """The call ids of the embeds posted in `channel` (titles `... call #77 ...`), in order."""
    titles = [e["title"] for body in posts(discord_api, channel)[since:] for e in body["embeds"]]
    return [int(match.group(1)) for title in titles if (match := re.search(r"call #(\d+)", title))]


# the bot's persistent items: a custom_id outside its template fails the whole message
TEMPLATES: list[re.Pattern[str]] = [
    item.__discord_ui_compiled_template__ for item in (CardButton, CardPicker, AcknowledgeButton)
]


def assert_cards_valid(discord_api: FakeDiscord) -> None:
    """Every component the bot sent has a custom_id its handlers take; Discord refused nothing."""
    for method in ("POST", "PATCH"):
        for body in discord_api.sent(method, r"/channels/\d+/messages(/\d+)?$"):
            for item in components(body):
                assert any(t.fullmatch(str(item.get("custom_id", ""))) for t in TEMPLATES), item
    assert discord_api.refused == []


def assert_no_traceback(caplog: pytest.LogCaptureFixture, since: int = 0) -> None:
    bad = [r for r in caplog.records[since:] if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]
    assert not [r for r in caplog.records[since:] if "cycle failed" in r.getMessage()]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def numbers_bot(make_bot: BotFactory, clock: Clock) -> DispatchBot:
    """Feeds of every call, a unit board and panic alerts, the listener on a free port."""
    return await make_bot(
        feeds=FEEDS,
        push=push_settings(),
        alerts=[{"server_id": 1, "channel_id": ALERTS, "ping_role_id": ROLE}],
        boards=[{"server_id": 1, "channel_id": BOARD}],
        units={"board_edit_seconds": 2},
        sonoran={"rate_limits": GENEROUS_LIMITS},
        clock=clock,
    )


@pytest.fixture
async def pusher(numbers_bot: DispatchBot) -> AsyncIterator[Pusher]:
    async with aiohttp.ClientSession() as session:
        yield Pusher(numbers_bot, session)


async def push(pusher: Pusher, kind: str, data: Any) -> tuple[int, str]:
    answer = await pusher.raw(to_json({"key": API_KEY, "type": kind, "data": data}))
    await pusher.feed.settled()
    return answer


# --- the readers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "as_id", "as_code"),
    [
        (77, 77, 77),
        (77.0, 77, 77),
        ("77", 77, 77),
        (" 77 ", 77, 77),
        (0, 0, 0),
        (float("inf"), None, UNKNOWN),
        (float("-inf"), None, UNKNOWN),
        (float("nan"), None, UNKNOWN),
        (-1, None, UNKNOWN),
        ("-1", None, UNKNOWN),
        (2**63 - 1, 2**63 - 1, UNKNOWN),
        (2**63, None, UNKNOWN),
        (2**70, None, UNKNOWN),
        (-(2**70), None, UNKNOWN),
        (2.5, None, UNKNOWN),
        (True, None, UNKNOWN),
        ("abc", None, UNKNOWN),
        ("²", None, UNKNOWN),
        ("9" * 5000, None, UNKNOWN),
        (None, None, UNKNOWN),
        ([7], None, UNKNOWN),
        ({"a": 7}, None, UNKNOWN),
    ],
)
def test_each_value_reads_as_an_id_or_a_code_on_purpose(value: Any, as_id: int | None, as_code: int) -> None:
    assert read_id(value) == as_id
    assert read_code(value) == as_code


def test_an_integer_too_long_for_python_costs_its_field_not_the_document() -> None:
    body = '{"a": ' + "9" * 5000 + ', "b": -' + "9" * 5000 + ', "c": 5}'
    with pytest.raises(ValueError):
        json.loads(body)
    assert loads(body) == {"a": float("inf"), "b": float("-inf"), "c": 5}
    assert integer(loads(body)["a"]) is None
    with pytest.raises(ValueError):
        loads("{not json")


# --- the findings, one by one ----------------------------------------------------------------------
@pytest.mark.parametrize("field", CODES)
async def test_a_code_of_1e400_on_the_poll_costs_nothing_but_that_code(
    numbers_bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    """Was: OverflowError in every feed cycle, for every server ("feed: cycle failed")."""
    body = call_list(active=[dispatch_call(501, **{field: Raw("1e400")}), dispatch_call(502)])
    cad.fail_next("get_calls", status=200, body=body, content_type="application/json")
    delay = await feed_of(numbers_bot).poll_once()
    assert delay == numbers_bot.settings.cad.poll_seconds  # the cycle completed, nothing failed
    assert posted_ids(discord_api, DISPATCH) == [501, 502]
    (embed, _) = posts(discord_api, DISPATCH)[0]["embeds"]
    shown = {f["name"]: f["value"] for f in embed["fields"]} | {"Origin": embed["footer"]["text"]}
    assert "Unknown" in shown[field.title()]
    assert_cards_valid(discord_api)
    assert_no_traceback(caplog)


@pytest.mark.parametrize("field", CODES)
async def test_a_code_of_1e400_pushed_costs_nothing_but_that_code(
    pusher: Pusher, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    """Was: a 500 with a traceback, and the other events of the request lost."""
    burst = [{"dispatch": dispatch_call(601, **{field: Raw("1e400")})}, {"dispatch": dispatch_call(602)}]
    assert await push(pusher, "EVENT_DISPATCH_NEW", burst) == (200, "ok")
    assert posted_ids(discord_api, DISPATCH) == [601, 602]
    assert_cards_valid(discord_api)
    assert_no_traceback(caplog)


async def test_a_unit_status_of_1e400_on_the_units_poll_keeps_the_unit_and_the_panic_alert(
    numbers_bot: DispatchBot, cad: FakeCad, discord_api: FakeDiscord, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: OverflowError in every units read, so a panic set through the API was never alerted."""
    body = to_json([unit(21, "1A-12", status=Raw("1e400")), unit(22, "2B-07", isPanic=True)])
    cad.fail_next("get_active_units", status=200, body=body, content_type="application/json")
    await poll(numbers_bot, clock)
    roster = units_of(numbers_bot).rosters[1]
    assert sorted(roster.units) == [21, 22] and roster.units[21].status == UNKNOWN
    (alert,) = posts(discord_api, ALERTS)
    assert alert["content"] == f"<@&{ROLE}> PANIC: 2B-07 J. Smith"
    units_of(numbers_bot).hurry_boards()
    await feed_of(numbers_bot).settled()
    (board,) = posts(discord_api, BOARD)
    assert "**Unknown status** (1)\n• **1A-12**" in board["embeds"][0]["description"]
    assert_no_traceback(caplog)


async def test_a_pushed_911_call_with_a_negative_id_costs_that_call_only(
    pusher: Pusher, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: its card's custom_id (`card:remove:1:-77`) invalid, so every delivery to the channel failed."""
    bad = -next(fresh_ids)  # its own, so that its line is this test's (the bot logs it once a process)
    assert await push(pusher, "EVENT_911", {"call": call_911(bad)}) == (200, "ok - ignored")
    assert await push(pusher, "EVENT_911", [{"call": call_911(-78)}, {"call": call_911(701)}]) == (200, "ok")
    assert await push(pusher, "EVENT_911", {"call": call_911(702)}) == (200, "ok")  # the channel still takes calls
    assert posted_ids(discord_api, CALLS) == [701, 702]
    assert await push(pusher, "EVENT_911", {"call": call_911(bad)}) == (200, "ok - ignored")  # sent again
    left_out = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert [m for m in left_out if f"(id {bad})" in m] == [
        f"push: an entry of EVENT_911 (id {bad}) cannot be read and is left out: "
        f"Value error, the id {bad} is not an integer from 0 to 2^63 - 1"
    ]  # logged once, however often it comes
    assert_cards_valid(discord_api)
    assert_no_traceback(caplog)


@pytest.mark.parametrize("call_id", [-77, 10**18, 2**63 - 1])
async def test_a_stored_call_whose_id_does_not_fit_a_custom_id_is_shown_without_a_card(call_id: int) -> None:
    """A row stored by a version that read negative ids, or an id of 19 digits: no buttons, so
    Discord takes the message (a custom_id outside the template fails the whole message). Async:
    discord.py 2.5 makes a view only inside a running loop."""

    def post(number: int) -> Post:
        call = EmergencyCall.model_construct(call_id=number, is_emergency=True)
        return Post(
            channel_id=1,
            server_id=1,
            kind=PostKind.CALL_911,
            call_id=number,
            batch="b",
            position=0,
            message_id=None,
            state=PostState.ACTIVE,
            call=call,
            ended_by=None,
            version="",
            shown=None,
            first_seen=0.0,
            ended_at=None,
            ping=False,
        )

    assert card_view([post(call_id)]) is None
    view = card_view([post(call_id), post(5)])
    assert view is not None and [item.custom_id for item in view.children] == ["card:remove:1:5"]  # type: ignore[attr-defined]


# --- every numeric field, property-based ---------------------------------------------------------------
FRESH = Raw("fresh")  # stands for a good id, new in its example (so that its post is new too)
fresh_ids = itertools.count(100_000)

weird = st.sampled_from(WEIRD)
code = st.integers(0, 4) | weird
some_id = st.integers(0, 50) | weird  # read or not, never one of the fresh ids
record_id = st.just(FRESH) | weird
flag = st.booleans() | weird
stamp = st.just("2026-11-22T12:00:00Z") | weird
metadata = st.fixed_dictionaries(
    {},
    optional={k: some_id if k == "origin911" else weird for k in ("origin911", "x", "y", "z", "postal", "priority")},
)
notes = st.lists(st.fixed_dictionaries({"content": st.just("seen")}, optional={"time": weird}), max_size=2) | weird
odd_911 = st.fixed_dictionaries(
    {"callId": record_id}, optional={"isEmergency": flag, "metaData": metadata, "updated": stamp}
)
odd_dispatch = st.fixed_dictionaries(
    {"callId": record_id},
    optional={
        "origin": code,
        "status": code,
        "priority": code,
        "primary": some_id,
        "idents": st.lists(some_id, max_size=3) | some_id,
        "metaData": metadata,
        "notes": notes,
        "updated": stamp,
    },
)
odd_unit = st.fixed_dictionaries({"id": record_id}, optional={"status": code, "isPanic": flag})
PROPERTY = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def with_fresh_ids(records: list[dict[str, Any]], key: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The records with FRESH replaced by a new id each, and those ids (of records that must show)."""
    out, fresh = [], []
    for record in records:
        if record[key] is FRESH:
            record = {**record, key: next(fresh_ids)}
            fresh.append(record[key])
        out.append(record)
    return out, fresh


def healthy_911() -> dict[str, Any]:
    return call_911(next(fresh_ids))


def healthy_dispatch() -> dict[str, Any]:
    return dispatch_call(next(fresh_ids))


def healthy_unit(*, panic: bool = False) -> dict[str, Any]:
    ident = next(fresh_ids)
    return unit(ident, f"U-{ident}", isPanic=panic)


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
@PROPERTY
@given(
    odd_911s=st.lists(odd_911, max_size=3),
    odd_dispatches=st.lists(odd_dispatch, max_size=3),
    odd_closed=st.lists(odd_dispatch, max_size=2),
    odd_units=st.lists(odd_unit, max_size=3),
    total=weird,
)
async def test_any_number_polled_costs_at_most_its_own_record(
    numbers_bot: DispatchBot,
    cad: FakeCad,
    discord_api: FakeDiscord,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    odd_911s: list[dict[str, Any]],
    odd_dispatches: list[dict[str, Any]],
    odd_closed: list[dict[str, Any]],
    odd_units: list[dict[str, Any]],
    total: Any,
) -> None:
    seen = {channel: len(posts(discord_api, channel)) for channel in (CALLS, DISPATCH, ALERTS)}
    logged = len(caplog.records)
    calls_911, fresh_911 = with_fresh_ids([call_911(c["callId"], **_rest(c)) for c in odd_911s], "callId")
    active, fresh_active = with_fresh_ids([dispatch_call(c["callId"], **_rest(c)) for c in odd_dispatches], "callId")
    closed, _ = with_fresh_ids([dispatch_call(c["callId"], **_rest(c)) for c in odd_closed], "callId")
    units, fresh_units = with_fresh_ids([unit(u["id"], "odd", **_rest(u, "id")) for u in odd_units], "id")
    first_911, last_911, first_active, last_active = (
        healthy_911(),
        healthy_911(),
        healthy_dispatch(),
        healthy_dispatch(),
    )
    panicking = healthy_unit(panic=True)

    body = call_list(
        emergency=[first_911, *calls_911, last_911],
        active=[first_active, *active, last_active],
        closed=closed,
        ClosedCallCount=total,
    )
    cad.fail_next("get_calls", status=200, body=body, content_type="application/json")
    assert await feed_of(numbers_bot).poll_once() == numbers_bot.settings.cad.poll_seconds
    cad.fail_next("get_active_units", status=200, body=to_json([*units, panicking]), content_type="application/json")
    await poll(numbers_bot, clock)

    posted_911 = set(posted_ids(discord_api, CALLS, seen[CALLS]))
    assert {first_911["callId"], last_911["callId"], *fresh_911} <= posted_911
    posted_dispatch = set(posted_ids(discord_api, DISPATCH, seen[DISPATCH]))
    assert {first_active["callId"], last_active["callId"], *fresh_active} <= posted_dispatch
    assert {panicking["id"], *fresh_units} <= set(units_of(numbers_bot).rosters[1].units)
    alerted = [body["content"] for body in posts(discord_api, ALERTS)[seen[ALERTS] :]]
    assert f"<@&{ROLE}> PANIC: U-{panicking['id']} J. Smith" in alerted
    assert_cards_valid(discord_api)
    assert_no_traceback(caplog, logged)


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
@PROPERTY
@given(
    odd_911s=st.lists(odd_911, max_size=3),
    odd_dispatches=st.lists(odd_dispatch, max_size=3),
    odd_units=st.lists(odd_unit, max_size=3),
    ids=st.lists(some_id, max_size=3) | some_id,
    one_id=some_id,
    status=code,
    panic=flag,
    stamp=weird,
)
async def test_any_number_pushed_costs_at_most_its_own_event(
    pusher: Pusher,
    numbers_bot: DispatchBot,
    discord_api: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    odd_911s: list[dict[str, Any]],
    odd_dispatches: list[dict[str, Any]],
    odd_units: list[dict[str, Any]],
    ids: Any,
    one_id: Any,
    status: Any,
    panic: Any,
    stamp: Any,
) -> None:
    seen = {channel: len(posts(discord_api, channel)) for channel in (CALLS, DISPATCH)}
    logged = len(caplog.records)
    calls_911, fresh_911 = with_fresh_ids([call_911(c["callId"], **_rest(c)) for c in odd_911s], "callId")
    active, fresh_active = with_fresh_ids([dispatch_call(c["callId"], **_rest(c)) for c in odd_dispatches], "callId")
    units, fresh_units = with_fresh_ids([unit(u["id"], "odd", **_rest(u, "id")) for u in odd_units], "id")
    first_911, last_911, first_active, last_active = (
        healthy_911(),
        healthy_911(),
        healthy_dispatch(),
        healthy_dispatch(),
    )
    on_duty = healthy_unit()

    requests: list[tuple[str, Any]] = [
        ("EVENT_911", [{"call": c} for c in (first_911, *calls_911, last_911)]),
        ("EVENT_DISPATCH_NEW", [{"dispatch": c} for c in (first_active, *active, last_active)]),
        ("EVENT_DISPATCH_EDIT", [{"dispatch": c} for c in active]),
        ("EVENT_DISPATCH_NOTE", {"callId": one_id, "note": {"label": "1-A", "content": "x", "time": stamp}}),
        ("EVENT_DISPATCH_UNIT_ATTACH", {"callId": one_id, "idents": ids}),
        ("EVENT_DISPATCH_UNIT_DETACH", {"callId": one_id, "ident": one_id}),
        ("EVENT_REMOVE_911", {"callIds": ids}),
        ("EVENT_DISPATCH_CLOSED", {"callId": one_id}),
        ("EVENT_UNIT_LOGIN", [{"unit": u} for u in units]),
        ("EVENT_UNIT_UPDATE", {"units": [*units, on_duty]}),
        ("EVENT_UNIT_STATUS", {"identIds": ids, "status": status}),
        ("EVENT_UNIT_PANIC", {"identIds": ids, "isPanic": panic}),
        ("EVENT_UNIT_LOGOUT", {"identId": one_id}),
    ]
    for kind, data in requests:
        if data == []:
            continue
        status_code, text = await push(pusher, kind, data)
        assert status_code == 200 and text in ("ok", "ok - ignored"), (kind, status_code, text)

    posted_911 = set(posted_ids(discord_api, CALLS, seen[CALLS]))
    assert {first_911["callId"], last_911["callId"], *fresh_911} <= posted_911
    posted_dispatch = set(posted_ids(discord_api, DISPATCH, seen[DISPATCH]))
    assert {first_active["callId"], last_active["callId"], *fresh_active} <= posted_dispatch
    assert {on_duty["id"], *fresh_units} <= set(units_of(numbers_bot).rosters[1].units)
    assert_cards_valid(discord_api)
    assert_no_traceback(caplog, logged)


def _rest(record: dict[str, Any], key: str = "callId") -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


# --- the client's other numbers ------------------------------------------------------------------------
@pytest.mark.parametrize("api_version", [1], ids=["v1"])
async def test_a_new_911_call_id_past_64_bits_is_a_bad_reply_not_a_crash(cad: FakeCad, client: SonoranClient) -> None:
    cad.fail_next("call_911", status=200, body="EMERGENCY CALL ADDED ID: " + "9" * 5000)
    with pytest.raises(BadReply):
        await client.file_911(caller="a", location="b", description="c")


@pytest.mark.parametrize("api_version", [2], ids=["v2"])
@pytest.mark.parametrize("value", ["-77", "1e400", "2.5"])
async def test_v2_odd_numbers_in_the_other_answers(cad: FakeCad, client: SonoranClient, value: str) -> None:
    cad.fail_next("call_911", status=200, body=f'{{"callId": {value}}}', content_type="application/json")
    with pytest.raises(BadReply):  # the call may have been filed: its id cannot be told
        await client.file_911(caller="a", location="b", description="c")
    cad.fail_next("get_version", status=200, body=f'{{"version": {value}}}', content_type="application/json")
    with pytest.raises(BadReply):
        await client.get_version()
    servers = f'[{{"id": {value}, "name": "odd"}}, {{"id": 2, "name": "good"}}]'
    cad.fail_next("get_servers", status=200, body=servers, content_type="application/json")
    assert [server.id for server in await client.get_servers()] == [2]  # one odd server costs that one
    account = f'{{"uuid": "u", "status": {value}, "permissions": {{"dispatch": true}}}}'
    cad.fail_next("get_account", status=200, body=account, content_type="application/json")
    answer = await client.get_account(discord_id=5)
    assert answer.status is None and answer.can_dispatch  # an unknown ACCOUNT_STATUS bars nobody
