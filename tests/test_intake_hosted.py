"""Push in hosted mode, over real loopback HTTP: one listener, two communities built for real (each
its own settings, key, state file and feed engine), each reached by its own path token and checked
against its own key; a token that names no community answers as any wrong path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import build_community
from bot.community import Communities, Community
from bot.config import Settings
from bot.intake.listener import KEY_WINDOW, PushListener, push_url
from bot.intake.router import Intake, hosted_routes
from bot.services import open_services

from .conftest import BotFactory
from .doubles.discord_fakes import FakeDiscord
from .doubles.fake_cad import API_KEY, FakeCad
from .helpers import DISCORD_TOKEN, make_settings
from .test_feed import posts
from .test_push import call_911

PATH = "/sonorancad/event"
A_CHANNEL, A_SECOND_CHANNEL, B_CHANNEL = 3001, 3003, 3002
KEY_A = API_KEY  # the fake CAD's key: A's community could also talk to the CAD
KEY_B = "the-Other-Community-Key-0123456789"


@pytest.fixture
def api_version() -> int:
    return 2  # routing does not depend on the CAD's API version: once is enough


@dataclass
class Hosted:
    intake: Intake
    registry: Communities
    a: Community
    b: Community
    idle: Community  # linked to a token, serves no feed
    tokens: dict[str, str]  # "a", "b", "idle" -> its path token
    base: str  # http://127.0.0.1:<port>

    @property
    def listener(self) -> PushListener:
        assert self.intake.listener is not None
        return self.intake.listener

    async def post(self, path: str, body: bytes) -> tuple[int, str]:
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(self.base + path, data=body) as response,
        ):
            return response.status, await response.text()

    async def raw(self, path: str, body: bytes, *, method: str = "POST") -> bytes:
        """The whole answer, as bytes, without its Date header (the only part that may differ
        from one second to the next)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.listener.bound_port)
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: bot\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            answer = await reader.read()
        finally:
            writer.close()
        return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.lower().startswith(b"date:"))


async def stored(community: Community) -> list[tuple[int, int, int]]:
    """Every post a community's state file holds: (channel, server, call)."""
    rows = await community.store.fetch("SELECT channel_id, server_id, call_id FROM posts ORDER BY rowid")
    return [(int(r["channel_id"]), int(r["server_id"]), int(r["call_id"])) for r in rows]


def event(call_id: int, key: str, *, pad: int = 0) -> bytes:
    data: dict[str, Any] = {"call": call_911(call_id)}
    if pad:
        data["pad"] = "x" * pad
    return json.dumps({"key": key, "type": "EVENT_911", "data": data}).encode()


@pytest.fixture
async def hosted(make_bot: BotFactory, cad: FakeCad, tmp_path: Path) -> AsyncIterator[Hosted]:
    client = await make_bot()  # the Discord side the communities deliver to
    async with contextlib.AsyncExitStack() as stack:

        async def community(name: str, key: str, feeds: list[dict[str, Any]], *, serve: bool = True) -> Community:
            settings = make_settings(
                cad.url,
                2,
                state_path=tmp_path / f"{name}.sqlite3",
                feeds=feeds,
                sonoran={"community_id": name, "api_key": key},
            )
            services = await stack.enter_async_context(open_services(settings, retry_backoff=0.01))
            built = build_community(client, settings, services, serve=serve)
            await built.start(poll=False)
            stack.push_async_callback(built.stop)
            return built

        a = await community(
            "community-a",
            KEY_A,
            [{"server_id": 1, "channel_id": A_CHANNEL}, {"server_id": 2, "channel_id": A_SECOND_CHANNEL}],
        )
        b = await community("community-b", KEY_B, [{"server_id": 1, "channel_id": B_CHANNEL}])
        idle = await community("community-idle", "the-Idle-Key-0123456789", [], serve=False)
        deployment = Settings(
            discord={"token": DISCORD_TOKEN},
            hosting={"enabled": True},
            push={"enabled": True, "host": "127.0.0.1", "port": 0, "path": PATH},
        )
        assert deployment.sonoran is None
        registry = Communities()
        intake = Intake(deployment.push, registry, hosted=deployment.hosting.enabled)
        await intake.start()  # with no community yet: they are linked below, while it listens
        stack.push_async_callback(intake.stop)
        tokens = {name: secrets.token_urlsafe(32) for name in ("a", "b", "idle")}
        for name, linked in (("a", a), ("b", b), ("idle", idle)):
            registry.link_push_token(tokens[name], linked)
        assert intake.listener is not None
        yield Hosted(intake, registry, a, b, idle, tokens, f"http://127.0.0.1:{intake.listener.bound_port}")


async def test_an_event_to_a_token_with_its_key_reaches_that_community_only(
    hosted: Hosted, discord_api: FakeDiscord
) -> None:
    assert await hosted.post(f"{PATH}/{hosted.tokens['a']}", event(11, KEY_A)) == (200, "ok")
    assert await stored(hosted.a) == [(A_CHANNEL, 1, 11)]  # stored before the 200
    assert await stored(hosted.b) == []
    assert await hosted.post(f"{PATH}/{hosted.tokens['b']}", event(12, KEY_B)) == (200, "ok")
    assert await stored(hosted.b) == [(B_CHANNEL, 1, 12)]
    assert await stored(hosted.a) == [(A_CHANNEL, 1, 11)]
    for community in (hosted.a, hosted.b):
        assert community.feed is not None
        await community.feed.settled()
    assert len(posts(discord_api, A_CHANNEL)) == 1 and len(posts(discord_api, B_CHANNEL)) == 1


async def test_a_token_with_another_communitys_key_is_401_and_nothing_is_stored(
    hosted: Hosted, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.intake.listener"):
        assert await hosted.post(f"{PATH}/{hosted.tokens['a']}", event(21, KEY_B)) == (401, "error")
        assert await hosted.post(f"{PATH}/{hosted.tokens['b']}/1", event(22, KEY_A)) == (401, "error")
    assert await stored(hosted.a) == [] and await stored(hosted.b) == []
    lines = [r.getMessage() for r in caplog.records if "wrong or missing key" in r.getMessage()]
    assert len(lines) == 2 and "community-a" in lines[0] and "community-b" in lines[1]  # one line per community
    assert KEY_A not in caplog.text and KEY_B not in caplog.text
    assert not any(token in caplog.text for token in hosted.tokens.values())


async def test_a_token_matching_nothing_answers_byte_for_byte_as_a_wrong_path(hosted: Hosted) -> None:
    body = event(31, KEY_A)
    wrong = await hosted.raw("/somewhere/else", body)
    assert wrong.startswith(b"HTTP/1.1 404 ")
    unknown = f"{PATH}/{secrets.token_urlsafe(32)}"
    for path in (
        unknown,
        f"{unknown}/1",
        PATH,  # push.path alone is nobody's URL in hosted mode
        f"{PATH}/",
        f"{PATH}/{hosted.tokens['idle']}",  # a community that serves no feed
        f"{PATH}/{hosted.tokens['a']}/not-a-server",
        f"{PATH}/{hosted.tokens['a']}/1/more",
        f"{PATH}/{hosted.tokens['a'][:-1]}",
    ):
        assert await hosted.raw(path, body) == wrong, path
    assert await hosted.raw(unknown, b"", method="GET") == await hosted.raw("/somewhere/else", b"", method="GET")
    assert await stored(hosted.a) == [] and await stored(hosted.b) == []


async def test_a_rotated_token_stops_working_at_once_and_the_new_one_works(hosted: Hosted) -> None:
    old = f"{PATH}/{hosted.tokens['a']}"
    assert (await hosted.post(old, event(41, KEY_A)))[0] == 200
    wrong = await hosted.raw("/somewhere/else", event(42, KEY_A))
    new = secrets.token_urlsafe(32)
    hosted.registry.unlink_push_tokens(hosted.a)
    hosted.registry.link_push_token(new, hosted.a)
    assert await hosted.raw(old, event(42, KEY_A)) == wrong
    assert await hosted.post(f"{PATH}/{new}", event(43, KEY_A)) == (200, "ok")
    assert [call for *_, call in await stored(hosted.a)] == [41, 43]


async def test_a_community_removed_or_rebuilt_is_found_as_the_registry_now_says(hosted: Hosted) -> None:
    hosted.registry.unlink_push_tokens(hosted.b)
    assert (await hosted.post(f"{PATH}/{hosted.tokens['b']}", event(51, KEY_B)))[0] == 404
    hosted.registry.link_push_token(hosted.tokens["b"], hosted.b)
    # its token now finds another community, as the host re-links a rebuilt one: that one's key
    hosted.registry.link_push_token(hosted.tokens["b"], hosted.a)
    assert (await hosted.post(f"{PATH}/{hosted.tokens['b']}", event(52, KEY_B)))[0] == 401
    assert await stored(hosted.b) == []


async def test_the_server_suffix_names_the_server_of_that_community(hosted: Hosted) -> None:
    token = hosted.tokens["a"]
    assert await hosted.post(f"{PATH}/{token}/2", event(61, KEY_A)) == (200, "ok")
    assert await hosted.post(f"{PATH}/{token}/1/", event(62, KEY_A)) == (200, "ok")
    assert await hosted.post(f"{PATH}/{token}/3", event(63, KEY_A)) == (200, "ok - ignored")  # no feed of A's
    assert await stored(hosted.a) == [(A_SECOND_CHANNEL, 2, 61), (A_CHANNEL, 1, 62)]
    # B has no feed on server 2: the suffix is read against B's own settings
    assert await hosted.post(f"{PATH}/{hosted.tokens['b']}/2", event(64, KEY_B)) == (200, "ok - ignored")
    assert await stored(hosted.b) == []


async def test_the_early_wrong_key_refusal_checks_the_routed_communitys_key(hosted: Hosted) -> None:
    stats = hosted.listener.stats
    pad = 2 * KEY_WINDOW  # the key is judged from the first bytes, the rest never held
    assert await hosted.post(f"{PATH}/{hosted.tokens['a']}", event(71, KEY_B, pad=pad)) == (401, "error")
    assert await hosted.post(f"{PATH}/{hosted.tokens['b']}", event(72, KEY_A, pad=pad)) == (401, "error")
    assert stats.wrong_key_early == 2 and stats.wrong_key == 2
    assert await hosted.post(f"{PATH}/{hosted.tokens['a']}", event(73, KEY_A, pad=pad)) == (200, "ok")
    assert await hosted.post(f"{PATH}/{hosted.tokens['b']}", event(74, KEY_B, pad=pad)) == (200, "ok")
    assert stats.wrong_key_early == 2
    assert await stored(hosted.a) == [(A_CHANNEL, 1, 73)] and await stored(hosted.b) == [(B_CHANNEL, 1, 74)]


async def test_hosted_intake_starts_with_no_community_and_opens_no_websocket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = Settings(
        discord={"token": DISCORD_TOKEN},
        hosting={"enabled": True},
        push={"enabled": True, "host": "127.0.0.1", "port": 0, "path": PATH, "websocket": True},
    )
    intake = Intake(deployment.push, Communities(), hosted=True)
    with caplog.at_level(logging.WARNING, logger="bot.intake.router"):
        await intake.start()
    try:
        assert intake.listener is not None and intake.sessions is None
        assert "push.websocket is not used in hosted mode" in caplog.text
        base = f"http://127.0.0.1:{intake.listener.bound_port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            for path in (PATH, f"{PATH}/{secrets.token_urlsafe(32)}", f"{PATH}/1"):
                async with session.post(base + path, data=event(81, KEY_A)) as response:
                    assert response.status == 404
    finally:
        await intake.stop()


def test_push_url_is_the_path_and_the_token_on_the_given_base() -> None:
    push = Settings(discord={"token": DISCORD_TOKEN}, hosting={"enabled": True}, push={"path": "/sonorancad/event/"})
    assert push_url(push.push, "TOKEN") == "http://127.0.0.1:3232/sonorancad/event/TOKEN"
    assert push_url(push.push, "TOKEN", "https://bot.example.com/") == "https://bot.example.com/sonorancad/event/TOKEN"
    root = Settings(discord={"token": DISCORD_TOKEN}, hosting={"enabled": True}, push={"path": "/", "port": 8080})
    assert push_url(root.push, "TOKEN") == "http://127.0.0.1:8080/TOKEN"


async def test_a_route_names_its_community_and_never_shows_its_key(hosted: Hosted) -> None:
    route = hosted_routes(hosted.registry)(f"{hosted.tokens['a']}/2")
    assert route is not None and route.label == "community-a" and route.server_id == 2
    assert KEY_A not in repr(route) and KEY_A not in repr(hosted.intake) and KEY_A not in repr(hosted.listener)


async def test_one_communitys_flood_is_its_own_429(hosted: Hosted) -> None:
    """The events-a-minute cap counts per community: A past it is answered 429, B is still taken."""
    hosted.listener.events_per_minute = 2
    answers = [await hosted.post(f"{PATH}/{hosted.tokens['a']}", event(40 + n, KEY_A)) for n in range(3)]
    assert [status for status, _ in answers] == [200, 200, 429]
    assert await hosted.post(f"{PATH}/{hosted.tokens['b']}", event(50, KEY_B)) == (200, "ok")
    assert await stored(hosted.b) == [(B_CHANNEL, 1, 50)]
