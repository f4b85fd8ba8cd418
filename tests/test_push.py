"""The real-time feed end to end: Sonoran push events POSTed over real loopback HTTP to the bot's
listener, on API v1 and v2; Discord is the strict double, the CAD the fake one, state a real file."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from bot.cli import push_test
from bot.config import load_settings
from bot.core import DispatchBot
from bot.intake.listener import MAX_BODY, PushListenerError
from bot.intake.websocket import PushSessions
from bot.preflight import push_checks

from .conftest import BotFactory
from .doubles.discord_fakes import FakeDiscord
from .doubles.fake_cad import API_KEY, COMMUNITY_ID, FakeCad
from .doubles.fake_signalr import FakeHub
from .doubles.loopback import free_port
from .helpers import make_settings
from .test_feed import edits, embed_titles, feed_of, posts
from .test_operations import read_until, start_bot, wait_for, write_config

CHANNEL = 2001
DISPATCH_CHANNEL = 2002
PATH = "/sonorancad/event"
FEEDS: list[dict[str, Any]] = [
    {"server_id": 1, "channel_id": CHANNEL},
    {"server_id": 1, "channel_id": DISPATCH_CHANNEL, "calls": [], "dispatch": True},
]


class Pusher:
    """Sends push events to the bot's listener as the CAD (or FiveM's forwarding) does, and keeps
    every request and answer for the record."""

    def __init__(self, bot: DispatchBot, session: aiohttp.ClientSession) -> None:
        assert bot.intake is not None and bot.intake.listener is not None
        self.feed = feed_of(bot)
        self.url = f"http://127.0.0.1:{bot.intake.listener.bound_port}{PATH}"
        self.session = session
        self.log: list[tuple[str, str, int, str]] = []

    async def raw(self, body: bytes | str, *, server: int | None = None) -> tuple[int, str]:
        url = self.url if server is None else f"{self.url}/{server}"
        data = body.encode() if isinstance(body, str) else body
        async with self.session.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
            text = await response.text()
        self.log.append((url, data.decode(errors="replace")[:300], response.status, text))
        return response.status, text

    async def send(
        self, kind: str, data: Any, *, key: str | None = API_KEY, server: int | None = None
    ) -> tuple[int, str]:
        envelope: dict[str, Any] = {"type": kind, "data": data}
        if key is not None:
            envelope["key"] = key
        answer = await self.raw(json.dumps(envelope), server=server)
        await self.feed.settled()
        return answer


def push_settings(**overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "host": "127.0.0.1", "port": 0, "path": PATH, **overrides}


@pytest.fixture
async def push_bot(make_bot: BotFactory) -> DispatchBot:
    return await make_bot(feeds=FEEDS, push=push_settings())


@pytest.fixture
async def pusher(push_bot: DispatchBot) -> AsyncIterator[Pusher]:
    async with aiohttp.ClientSession() as session:
        yield Pusher(push_bot, session)


def call_911(call_id: int, *, emergency: bool = True, caller: str = "Anna") -> dict[str, Any]:
    return {
        "callId": call_id,
        "isEmergency": emergency,
        "caller": caller,
        "location": "Grove St",
        "description": "House fire",
        "metaData": {"postal": "305"},
    }


def dispatch_call(call_id: int, title: str = "Armed robbery", **fields: Any) -> dict[str, Any]:
    return {
        "callId": call_id,
        "origin": 0,
        "status": 1,
        "priority": 2,
        "address": "Mission Row",
        "postal": "101",
        "title": title,
        "code": "10-31",
        "description": "",
        "notes": "",
        "idents": [],
        "metaData": {},
        **fields,
    }


# --- every event type ------------------------------------------------------------------------------
async def test_a_911_event_is_posted_without_asking_the_cad(
    push_bot: DispatchBot, pusher: Pusher, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    assert await pusher.send("EVENT_911", {"call": call_911(501)}) == (200, "ok")
    (body,) = posts(discord_api, CHANNEL)
    assert embed_titles(body) == ["🚨 EMERGENCY 911 call #501"]
    assert posts(discord_api, DISPATCH_CHANNEL) == []  # that feed takes dispatch calls only
    assert "get_calls" not in cad.operations()


async def test_remove_911_event_edits_the_post_as_removed(pusher: Pusher, discord_api: FakeDiscord) -> None:
    await pusher.send("EVENT_911", {"call": call_911(502)})
    assert await pusher.send("EVENT_REMOVE_911", {"callIds": [502]}) == (200, "ok")
    (edit,) = edits(discord_api, CHANNEL)
    assert "removed" in json.dumps(edit["embeds"][0]).lower()


async def test_dispatch_events_post_edit_note_units_and_close(pusher: Pusher, discord_api: FakeDiscord) -> None:
    assert await pusher.send("EVENT_DISPATCH_NEW", {"eventOriginIdent": 3, "dispatch": dispatch_call(77)}) == (
        200,
        "ok",
    )
    (body,) = posts(discord_api, DISPATCH_CHANNEL)
    assert "#77" in body["embeds"][0]["title"] and "Armed robbery" in json.dumps(body["embeds"][0])

    await pusher.send("EVENT_DISPATCH_EDIT", {"dispatch": dispatch_call(77, title="Hostage situation")})
    assert "Hostage situation" in json.dumps(edits(discord_api, DISPATCH_CHANNEL)[-1]["embeds"][0])

    note = {"time": "12:00:00", "label": "1-A-12", "type": "text", "content": "Suspect fled north"}
    await pusher.send("EVENT_DISPATCH_NOTE", {"callId": 77, "note": note})
    assert "Suspect fled north" in json.dumps(edits(discord_api, DISPATCH_CHANNEL)[-1]["embeds"][0])

    await pusher.send("EVENT_DISPATCH_UNIT_ATTACH", {"eventOriginIdent": 3, "callId": 77, "idents": [11, 12]})
    units = _field(edits(discord_api, DISPATCH_CHANNEL)[-1], "Units")
    assert units == "#11, #12"  # no units roster here (no board, no alert): by identifier
    await pusher.send("EVENT_DISPATCH_UNIT_DETACH", {"eventOriginIdent": 3, "callId": 77, "ident": 11})
    assert _field(edits(discord_api, DISPATCH_CHANNEL)[-1], "Units") == "#12"

    await pusher.send("EVENT_DISPATCH_CLOSED", {"eventOriginIdent": 3, "callIds": [77]})
    closed = json.dumps(edits(discord_api, DISPATCH_CHANNEL)[-1]["embeds"][0]).lower()
    assert "closed" in closed
    assert len(posts(discord_api, DISPATCH_CHANNEL)) == 1  # one message, edited through the call's life


def _field(body: dict[str, Any], name: str) -> str:
    return next(str(f["value"]) for f in body["embeds"][0]["fields"] if f["name"] == name)


async def test_list_shaped_data_is_one_event_per_item(pusher: Pusher, discord_api: FakeDiscord) -> None:
    assert await pusher.send("EVENT_911", [{"call": call_911(601)}, {"call": call_911(602, emergency=False)}]) == (
        200,
        "ok",
    )
    titles = [t for body in posts(discord_api, CHANNEL) for t in embed_titles(body)]
    assert sorted(titles) == ["📞 CIVIL 911 call #602", "🚨 EMERGENCY 911 call #601"]


# --- the key -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["definitely-not-the-key", "", None])
async def test_a_wrong_or_missing_key_is_401_and_nothing_else(
    pusher: Pusher, discord_api: FakeDiscord, key: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.intake.listener"):
        for _ in range(3):
            assert await pusher.send("EVENT_911", {"call": call_911(701)}, key=key) == (401, "error")
    assert posts(discord_api, CHANNEL) == []
    refusals = [r for r in caplog.records if "wrong or missing key" in r.getMessage()]
    assert len(refusals) == 1  # once a minute per address, not once a request
    assert API_KEY not in caplog.text and "definitely-not-the-key" not in caplog.text


async def test_the_key_in_another_case_is_accepted(pusher: Pusher, discord_api: FakeDiscord) -> None:
    assert await pusher.send("EVENT_911", {"call": call_911(702)}, key=API_KEY.upper()) == (200, "ok")
    assert len(posts(discord_api, CHANNEL)) == 1


async def test_the_key_compares_on_ascii_case_only(pusher: Pusher, discord_api: FakeDiscord) -> None:
    assert "k" in API_KEY
    kelvin = API_KEY.replace("k", "\u212a")  # KELVIN SIGN: casefold() makes it a "k"
    assert await pusher.send("EVENT_911", {"call": call_911(703)}, key=kelvin) == (401, "error")
    lone_surrogate = '{"key": "\\ud800", "type": "EVENT_911", "data": {}}'
    assert (await pusher.raw(lone_surrogate))[0] == 400  # not text: refused before the key is compared
    assert posts(discord_api, CHANNEL) == []


async def test_the_type_is_read_in_any_case(pusher: Pusher, discord_api: FakeDiscord) -> None:
    """The FiveM receiver upper-cases the type, so forwarders and old CADs get away with any case."""
    assert await pusher.send("event_911", {"call": call_911(704)}) == (200, "ok")
    assert await pusher.send("Event_Remove_911", {"callIds": [704]}) == (200, "ok")
    assert len(posts(discord_api, CHANNEL)) == 1
    assert "removed" in json.dumps(edits(discord_api, CHANNEL)[-1]["embeds"][0]).lower()


async def test_a_null_list_falls_back_to_the_single_field(pusher: Pusher, discord_api: FakeDiscord) -> None:
    await pusher.send("EVENT_DISPATCH_NEW", {"dispatch": dispatch_call(78)})
    attach = {"eventOriginIdent": 3, "callId": 78, "idents": None, "ident": 7}
    assert await pusher.send("EVENT_DISPATCH_UNIT_ATTACH", attach) == (200, "ok")
    assert _field(edits(discord_api, DISPATCH_CHANNEL)[-1], "Units") == "#7"
    assert await pusher.send("EVENT_DISPATCH_CLOSED", {"callIds": None, "callId": 78}) == (200, "ok")
    assert "closed" in json.dumps(edits(discord_api, DISPATCH_CHANNEL)[-1]["embeds"][0]).lower()


# --- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"key": "k", "type": "EVENT_911"}',
        b'{"key": "k", "data": {}}',
        b'{"type": "EVENT_911", "data": [1, 2]}',
        b"\xff\xfe\x00",
        b"",
    ],
)
async def test_malformed_bodies_are_400(pusher: Pusher, discord_api: FakeDiscord, body: bytes) -> None:
    status, _ = await pusher.raw(body)
    assert status == 400
    assert posts(discord_api, CHANNEL) == []


async def test_a_body_over_one_mib_is_413(pusher: Pusher, discord_api: FakeDiscord) -> None:
    big = json.dumps({"key": API_KEY, "type": "EVENT_911", "data": {"call": call_911(801), "pad": "x" * MAX_BODY}})
    status, _ = await pusher.raw(big)
    assert status == 413
    assert posts(discord_api, CHANNEL) == []


async def test_unknown_events_and_unrouted_servers_are_ignored(
    pusher: Pusher, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    assert await pusher.send("EVENT_UNIT_PANIC", {"identIds": [3], "isPanic": True}) == (200, "ok - ignored")
    assert await pusher.send("EVENT_911", {"call": call_911(901)}, server=2) == (200, "ok - ignored")
    assert await pusher.send("EVENT_911", {"nothing": "useful"}) == (200, "ok - ignored")
    assert posts(discord_api, CHANNEL) == [] and cad.operations() == []


async def test_the_server_in_the_path_routes_the_event(make_bot: BotFactory, discord_api: FakeDiscord) -> None:
    bot = await make_bot(feeds=[{"server_id": 2, "channel_id": CHANNEL}], push=push_settings())
    async with aiohttp.ClientSession() as session:
        pusher = Pusher(bot, session)
        assert await pusher.send("EVENT_911", {"call": call_911(902)}) == (200, "ok - ignored")  # server 1
        assert await pusher.send("EVENT_911", {"call": call_911(902)}, server=2) == (200, "ok")
    assert len(posts(discord_api, CHANNEL)) == 1


# --- idempotence and the poll --------------------------------------------------------------------------
async def test_the_same_event_twice_changes_nothing(pusher: Pusher, discord_api: FakeDiscord) -> None:
    for _ in range(2):
        await pusher.send("EVENT_911", {"call": call_911(1001)})
        await pusher.send("EVENT_DISPATCH_NEW", {"dispatch": dispatch_call(1002)})
        await pusher.send("EVENT_DISPATCH_NOTE", {"callId": 1002, "note": {"label": "A", "content": "once"}})
    assert len(posts(discord_api, CHANNEL)) == 1 and len(posts(discord_api, DISPATCH_CHANNEL)) == 1
    assert len(edits(discord_api, DISPATCH_CHANNEL)) == 1  # the note, once
    await pusher.send("EVENT_REMOVE_911", {"callIds": [1001]})
    await pusher.send("EVENT_REMOVE_911", {"callIds": [1001]})
    await pusher.send("EVENT_911", {"call": call_911(1001)})  # a late duplicate does not revive it
    assert len(edits(discord_api, CHANNEL)) == 1 and len(posts(discord_api, CHANNEL)) == 1


async def test_an_event_and_a_poll_for_the_same_call_make_one_post(
    push_bot: DispatchBot, pusher: Pusher, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    call_id = cad.add_911("Anna", "Grove St", "House fire")
    event = cad.servers[1].emergency[call_id]
    feed = feed_of(push_bot)
    # both at once: the event arrives while the poll is on its way
    await asyncio.gather(pusher.send("EVENT_911", {"call": event}), feed.poll_once())
    await feed.poll_once()
    titles = [t for body in posts(discord_api, CHANNEL) for t in embed_titles(body)]
    assert titles == [f"🚨 EMERGENCY 911 call #{call_id}"]


async def test_the_poll_reconciles_what_events_missed(
    push_bot: DispatchBot, pusher: Pusher, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    await pusher.send("EVENT_911", {"call": call_911(1101)})  # the CAD never listed it: gone by the poll
    missed = cad.add_911("Ben", "Vinewood", "Theft")  # filed through the API: Sonoran sends no event
    await feed_of(push_bot).poll_once()
    titles = [t for body in posts(discord_api, CHANNEL) for t in embed_titles(body)]
    assert sorted(titles) == sorted(["🚨 EMERGENCY 911 call #1101", f"🚨 EMERGENCY 911 call #{missed}"])
    assert "removed" in json.dumps(edits(discord_api, CHANNEL)[-1]).lower()


async def test_events_slow_the_poll_and_free_the_budget(push_bot: DispatchBot, pusher: Pusher) -> None:
    feed = feed_of(push_bot)
    assert await feed.poll_once() == 5  # make_settings' poll_seconds
    reserve_idle = push_bot.board.feed_reserve
    await pusher.send("EVENT_911", {"call": call_911(1201)})
    assert await feed.poll_once() == 60  # push.poll_seconds_when_live
    assert push_bot.board.feed_reserve < reserve_idle


# --- start and stop ----------------------------------------------------------------------------------
async def test_a_taken_port_is_a_clear_error_at_start(make_bot: BotFactory) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PushListenerError) as info:  # from login(): the bot starts the engine itself
            await make_bot(feeds=FEEDS, push=push_settings(port=port))
    error = info.value
    assert f"push.port {port}" in str(error) and "push.enabled = false" in str(error)


async def test_the_listener_is_bound_at_login_and_closed_by_close(make_bot: BotFactory) -> None:
    port = free_port()
    bot = await make_bot(feeds=FEEDS, push=push_settings(port=port))
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) == 0  # bound by the time login() returned
    await bot.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_shutdown_while_an_event_is_handled(
    make_bot: BotFactory, discord_api: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(feeds=FEEDS, push=push_settings())
    async with aiohttp.ClientSession() as session:
        pusher = Pusher(bot, session)
        body = json.dumps({"key": API_KEY, "type": "EVENT_911", "data": {"call": call_911(1301)}})
        await pusher.raw(body)
        await bot.close()  # the event is queued or being posted: neither may crash the shutdown
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- fuzz ------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
event_types = st.sampled_from(["EVENT_911", "EVENT_REMOVE_911", "EVENT_DISPATCH_NEW", "EVENT_DISPATCH_NOTE", "X"])
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({"type": event_types, "data": json_values}, optional={"key": st.text(max_size=40)}).map(
        lambda value: json.dumps(value).encode()
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
async def test_fuzz_never_5xx_and_never_a_post_without_the_key(
    pusher: Pusher, discord_api: FakeDiscord, body: bytes
) -> None:
    status, _ = await pusher.raw(body)
    await pusher.feed.settled()
    assert status in (200, 400, 401)
    assert posts(discord_api, CHANNEL) == [] and posts(discord_api, DISPATCH_CHANNEL) == []


# --- the command line: run, check, push-test --------------------------------------------------------
def push_toml(port: int) -> str:
    return f'\n[push]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'


async def test_run_with_the_port_taken_says_so_in_one_line(tmp_path: Path, cad: FakeCad) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        process = await start_bot(write_config(tmp_path, cad.url, extra=push_toml(holder.getsockname()[1])))
        code = await asyncio.wait_for(process.wait(), 30)
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert code == 1 and "not starting: push.port" in log and "Traceback" not in log


async def test_push_test_reaches_the_running_bot(
    tmp_path: Path, cad: FakeCad, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, cad.url, extra=push_toml(free_port()))
    process = await start_bot(config)
    try:
        await read_until(process, "push: listening")
        settings = load_settings(config, {})
        assert await push_test(settings, None, post=False) == 0
        assert "HTTP 200 'ok - ignored'" in capsys.readouterr().out
        assert await push_test(settings, None, post=True) == 0
        assert "HTTP 200 'ok'" in capsys.readouterr().out
        wrong = settings.model_copy(update={"sonoran": settings.cad.model_copy(update={"api_key": SecretStr("x")})})
        assert await push_test(wrong, None, post=False) == 1
        assert "refused the key" in capsys.readouterr().out
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    assert await push_test(settings, None, post=False) == 1  # nobody listening: one line, exit 1
    assert "no answer" in capsys.readouterr().out


def test_check_reports_the_listener_and_its_urls() -> None:
    port = free_port()
    settings = make_settings("http://127.0.0.1:9", 2, feeds=FEEDS, push=push_settings(port=port, websocket=True))
    (listener, websocket) = push_checks(settings)
    assert listener.ok and f"http://127.0.0.1:{port}{PATH}/1" in listener.detail
    assert listener.detail.index("enablePushEventForwarding") < listener.detail.index(PATH)  # forwarding first
    # a warning, not a problem: a CAD server id of the bot's own is a sound set-up
    assert websocket.ok and websocket.warning and "CAD server(s) 1, the ids its feeds use" in websocket.detail
    assert "forward from the FiveM resource" in websocket.fix
    assert websocket.line().startswith("warning push websocket") and "-> with a game server" in websocket.line()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        (taken, _) = push_checks(settings)
    assert not taken.ok and "push-test" in taken.fix


# --- the opt-in SignalR session ------------------------------------------------------------------------
@pytest.fixture
async def hub(cad: FakeCad) -> AsyncIterator[FakeHub]:
    cad.hub = FakeHub(community_id=COMMUNITY_ID, api_key=API_KEY, servers=(1, 2))
    yield cad.hub
    await cad.hub.drop_connections()


async def test_the_websocket_session_authenticates_and_takes_push_events(
    make_bot: BotFactory, hub: FakeHub, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=FEEDS, push=push_settings(websocket=True))
    await hub.wait_for_authentications(1)
    assert hub.authentications == [(COMMUNITY_ID, API_KEY, 1)]  # authenticatev2(communityId, apiKey, serverId)
    feed = feed_of(bot)
    envelope = {"key": API_KEY, "type": "EVENT_911", "data": {"call": call_911(1401)}}
    assert await hub.push(1, json.dumps(envelope)) == 1  # pushEvent with a JSON string
    assert await hub.push(1, {**envelope, "data": {"call": call_911(1402)}}) == 1  # ... and with an object
    await wait_for(lambda: len(titles_in(discord_api, CHANNEL)) == 2)
    await feed.settled()
    assert sorted(titles_in(discord_api, CHANNEL)) == ["🚨 EMERGENCY 911 call #1401", "🚨 EMERGENCY 911 call #1402"]
    assert await hub.push(1, {**envelope, "key": "wrong", "data": {"call": call_911(1403)}}) == 1
    await asyncio.sleep(0.2)
    assert len(titles_in(discord_api, CHANNEL)) == 2  # the same key check as the HTTP push


async def test_the_websocket_session_authenticates_again_after_a_reconnect(
    make_bot: BotFactory, hub: FakeHub, discord_api: FakeDiscord
) -> None:
    await make_bot(feeds=FEEDS, push=push_settings(websocket=True))
    await hub.wait_for_authentications(1)
    await hub.drop_connections()  # the hub restarts: it forgets who we are
    await hub.wait_for_authentications(1, seconds=20)
    assert len(hub.authentications) == 2
    envelope = {"key": API_KEY, "type": "EVENT_911", "data": {"call": call_911(1501)}}
    assert await hub.push(1, envelope) == 1
    await wait_for(lambda: len(posts(discord_api, CHANNEL)) == 1)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PushSessions, "retry_delays", (0.05, 0.1))


async def test_a_refused_authentication_is_retried_and_logged_once(
    make_bot: BotFactory, hub: FakeHub, caplog: pytest.LogCaptureFixture, quick_retries: None
) -> None:
    hub.api_key = "the-hub-wants-another-key"
    with caplog.at_level(logging.DEBUG, logger="bot.intake.websocket"):
        await make_bot(feeds=FEEDS, push=push_settings(websocket=True))
        await wait_for(lambda: len(hub.authentications) >= 3)  # tried again, after a wait
        await wait_for(lambda: hub.open_sessions() == 0)  # ... and never left open unauthenticated
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings  # once per change, not once per attempt
    assert "session ended: Sonoran refused authenticatev2: INVALID API KEY" in warnings[0]
    assert API_KEY not in caplog.text


async def test_a_hub_error_ends_the_session_with_its_reason(
    make_bot: BotFactory,
    hub: FakeHub,
    discord_api: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
    quick_retries: None,
) -> None:
    hub.hub_error = "An unexpected error occurred invoking 'authenticatev2' on the server."
    with caplog.at_level(logging.DEBUG):
        await make_bot(feeds=FEEDS, push=push_settings(websocket=True))
        await wait_for(lambda: len(hub.authentications) >= 2)
        assert "Error callback is not set" not in caplog.text
        assert "the hub answered an error: An unexpected error occurred" in caplog.text
        hub.hub_error = None  # the hub recovers: the next session authenticates and takes events
        await hub.wait_for_authentications(1)
    envelope = {"key": API_KEY, "type": "EVENT_911", "data": {"call": call_911(1601)}}
    assert await hub.push(1, envelope) == 1
    await wait_for(lambda: len(posts(discord_api, CHANNEL)) == 1)


def test_websocket_needs_push_enabled() -> None:
    with pytest.raises(ValidationError, match=r"push\.websocket = true needs push\.enabled = true"):
        make_settings("http://127.0.0.1:9", 2, push={"websocket": True})


def titles_in(discord_api: FakeDiscord, channel: int) -> list[str]:
    return [title for body in posts(discord_api, channel) for title in embed_titles(body)]


async def test_websocket_without_its_extra_is_a_clear_error(
    make_bot: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pysignalr.client", None)  # as if `[websocket]` was not installed
    with pytest.raises(PushListenerError) as info:
        await make_bot(feeds=FEEDS, push=push_settings(websocket=True))
    assert 'pip install ".[websocket]"' in str(info.value)


async def test_a_burst_keeps_emergency_calls_in_messages_of_their_own(pusher: Pusher, discord_api: FakeDiscord) -> None:
    # the same rule as the poll, also when no role is pinged (this feed has none)
    await pusher.send("EVENT_911", [{"call": call_911(1601)}, {"call": call_911(1602, emergency=False)}])
    assert [embed_titles(body) for body in posts(discord_api, CHANNEL)] == [
        ["🚨 EMERGENCY 911 call #1601"],
        ["📞 CIVIL 911 call #1602"],
    ]
