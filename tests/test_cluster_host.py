"""Cluster mode inside one test process: two hosted bots sharing one PostgreSQL (registry, states,
leases, inbox), as two processes would. Exactly one runs a community's engines; the other answers
its commands and /setup, stores its pushes for the owner, follows what the owner's side changed,
and takes the community over when the owner's lease lapses. (tests/test_cluster.py kills real
processes.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.cluster.cli import cluster
from bot.community import Community
from bot.config import Settings
from bot.core import DispatchBot
from bot.hosting.host import Hosted

from .doubles.discord_fakes import FakeDiscord, button, button_id, dispatch_interaction
from .doubles.fake_cad import FakeCad
from .helpers import DISCORD_TOKEN
from .test_hosting import MASTER_KEY, Guild, last_reply, link
from .test_hosting import cads as cads  # the fixture
from .test_operations import wait_for as until
from .test_push import call_911

LEASE = 1.5
PATH = "/sonorancad/event"


def cluster_settings(tmp_path: Path, pg_url: str, schema: str, name: str, **discord: Any) -> Settings:
    return Settings(
        discord={"token": DISCORD_TOKEN, **discord},
        state={"path": str(tmp_path / f"{name}.sqlite3"), "url": pg_url, "schema_name": schema},
        hosting={"enabled": True, "secret_keys": MASTER_KEY, "allow_private_api_urls": True},
        push={"enabled": True, "host": "127.0.0.1", "port": 0, "path": PATH},
        cluster={"lease_seconds": LEASE},
    )


Start = Callable[..., Awaitable[DispatchBot]]


@pytest.fixture
async def start(discord_api: FakeDiscord, tmp_path: Path, pg_url: str, pg_schema: str) -> AsyncIterator[Start]:
    async with contextlib.AsyncExitStack() as stack:

        async def factory(name: str, **discord: Any) -> DispatchBot:
            bot = DispatchBot(cluster_settings(tmp_path, pg_url, pg_schema, name, **discord), autostart_feed=False)
            stack.push_async_callback(bot.close)
            await bot.login("fake-token")
            return bot

        yield factory


def hosted(bot: DispatchBot, guild: Guild) -> Hosted:
    assert bot.host is not None
    found = bot.host.hosted_for(int(guild.id))
    assert found is not None
    return found


async def push(bot: DispatchBot, token: str, body: dict[str, Any]) -> int:
    assert bot.intake is not None and bot.intake.listener is not None
    url = f"http://127.0.0.1:{bot.intake.listener.bound_port}{PATH}/{token}"
    async with aiohttp.ClientSession() as session, session.post(url, data=json.dumps(body)) as response:
        return response.status


async def test_one_owner_a_push_anywhere_a_change_anywhere_and_a_takeover(
    start: Start,
    discord_api: FakeDiscord,
    cads: Callable[..., Awaitable[FakeCad]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a = await start("a")
    guild = Guild(a)
    cad = await cads(api_key="key-OF-THE-CLUSTER-0123456789")
    assert (await link(a, guild, cad, discord_api)).startswith("Linked to community")
    await dispatch_interaction(a, guild.setup("feed", channel=("channel", guild.feed), calls="emergency"))
    assert hosted(a, guild).community.feed is not None  # linked here, free: owned here at once

    b = await start("b")
    guild.also_in(b)
    assert hosted(b, guild).community.feed is None  # a holds it: b answers its commands only

    # a push to b, which does not own it: stored for a (200 only once stored), posted by a
    token = hosted(a, guild).tenant.push_token.get_secret_value()
    call = str(cad.add_911("Anna", "Grove St", "pushed"))  # the CAD has it, and pushes it
    event = {"key": cad.api_key, "type": "EVENT_911", "data": {"call": call_911(int(call))}}
    assert b.host is not None and b.host.inbox is not None
    stored: list[bytes] = []
    put = b.host.inbox.put

    async def spy(community: str, server_id: int, body: bytes) -> None:
        stored.append(body)
        await put(community, server_id, body)

    b.host.inbox.put = spy  # type: ignore[method-assign]
    assert await push(b, token, event) == 200
    assert len(stored) == 1 and cad.api_key.encode() not in stored[0]  # the key stays sealed, never at rest
    await until(lambda: any(call in str(m["embeds"]) for m in discord_api.channel_messages(guild.feed)))

    # /setup on b: stored, and a (the owner) rebuilds on it at its next look at the registry
    await dispatch_interaction(b, guild.setup("audit", channel=("channel", guild.audit)))
    assert "audit" in last_reply(discord_api).lower()
    await until(lambda: hosted(a, guild).guilds[int(guild.id)].audit_channel_id == int(guild.audit))
    assert hosted(a, guild).community.feed is not None and hosted(b, guild).community.feed is None

    # `python -m bot cluster`: both processes, and a owns the community, named by its ID
    assert await cluster(a.settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 processes alive", lines
    (owner,) = [line for line in lines if cad.community_id in line]
    assert a.host is not None and a.host.shared is not None
    assert owner.startswith(a.host.shared.member_id), lines

    # a stops renewing (as if paused or cut off, its lease not released): its engines stop before
    # the lease ends. Meanwhile a member removes the call from its card, the click reaching b:
    # b checks the card against the shared state, sends the removal through the shared budget,
    # remembers who; b takes the community over once a's lease has ended, and its first poll
    # shows the card as removed, by that member, once
    assert a.host.keeper is not None
    await a.host.keeper.stop(release=False)
    assert hosted(a, guild).community.feed is None or hosted(a, guild).community.feed._closed  # type: ignore[union-attr]
    card = one_card(discord_api, guild, call)
    assert hosted(b, guild).community.feed is None  # nobody runs its engines: a's lease has not ended yet
    await dispatch_interaction(b, in_channel(button(f"card:remove:1:{call}", card["id"], message=card), guild))
    question = discord_api.last_interaction_message()
    confirm = next(c["label"] for row in question["components"] for c in row["components"] if c["label"] != "Cancel")
    await dispatch_interaction(
        b, in_channel(button(button_id(question, confirm), question["id"], message=question), guild)
    )
    assert any(f"#{call} removed" in str(reply) for reply in discord_api.replies()), discord_api.replies()[-3:]
    assert cad.operations().count("remove_911") == 1
    await until(lambda: hosted(b, guild).community.feed is not None)
    cad.add_911("Jane Roe", "Legion Square", "after the takeover")
    await b.get_cog("Feed").poll_once()  # type: ignore[union-attr]
    await until(lambda: "removed" in str(one_card(discord_api, guild, call)).lower())
    shown = [str(m["embeds"]) for m in discord_api.channel_messages(guild.feed)]
    assert sum("Legion Square" in s for s in shown) == 1 and sum(call in s for s in shown) == 1, shown


def in_channel(payload: dict[str, Any], guild: Guild) -> dict[str, Any]:
    """A click on a card of the guild's feed channel."""
    payload["channel_id"] = guild.feed
    payload["channel"] = dict(guild.channels[guild.feed])
    return guild.here(payload)


def one_card(discord_api: FakeDiscord, guild: Guild, call: str) -> dict[str, Any]:
    (card,) = [m for m in discord_api.channel_messages(guild.feed) if call in str(m["embeds"])]
    return card


async def test_a_community_that_cannot_restart_at_its_owner_is_taken_over_and_tried_again(
    start: Start,
    discord_api: FakeDiscord,
    cads: Callable[..., Awaitable[FakeCad]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A /setup change on the owner whose rebuild fails there (its engines cannot start): the owner
    gives the lease up at once instead of holding it with nothing running; the other process takes
    the community over, and the first one has it again, command-only, at its next look."""
    a = await start("a")
    guild = Guild(a)
    cad = await cads(api_key="key-OF-THE-CLUSTER-0123456789")
    await link(a, guild, cad, discord_api)
    b = await start("b")
    guild.also_in(b)
    assert hosted(a, guild).community.feed is not None and hosted(b, guild).community.feed is None

    real_start = Community.start

    async def broken_on_a(self: Community, *, poll: bool) -> None:
        if self.client is a and self.feed is not None:
            raise RuntimeError("cannot start")
        await real_start(self, poll=poll)

    monkeypatch.setattr(Community, "start", broken_on_a)
    await dispatch_interaction(a, guild.setup("feed", channel=("channel", guild.feed), calls="emergency"))
    await until(lambda: hosted(b, guild).community.feed is not None)  # b took it over
    monkeypatch.setattr(Community, "start", real_start)
    assert a.host is not None
    await until(lambda: a.host is not None and a.host.hosted_for(int(guild.id)) is not None)
    assert hosted(a, guild).community.feed is None  # back on a, command-only: b owns it
    assert hosted(b, guild).community.settings.feeds[0].channel_id == int(guild.feed)  # with the change


async def test_a_community_goes_to_the_process_whose_shards_carry_its_server_and_comes_back_when_it_dies(
    start: Start, discord_api: FakeDiscord, cads: Callable[..., Awaitable[FakeCad]]
) -> None:
    """Two processes, shard 0 and shard 1 of 2; the server is on shard 1. Linked on shard 0's
    process while shard 1's is not running, the community is worked there; once shard 1's process is
    up and ready, it goes there (its commands arrive there too), worked by one process at a time;
    when that process dies (its heartbeat and its renewals stop), shard 0's takes it back."""
    a = await start("a", shard_ids=[0], shard_count=2)
    guild = Guild(a, guild_id=str(4001 << 22))  # (id >> 22) % 2 == 1: shard 1
    assert not a.settings.discord.runs_guild(int(guild.id))
    await link(a, guild, await cads(api_key="key-OF-THE-CLUSTER-0123456789"), discord_api)
    await until(lambda: hosted(a, guild).community.feed is not None)  # no process of shard 1: a works it

    tenant = hosted(a, guild).tenant.id
    both: list[float] = []

    async def never_both() -> None:  # the two processes' own view of the lease, all along
        while True:
            keepers = [bot.host.keeper for bot in (a, b) if bot.host is not None and bot.host.keeper is not None]
            if len(keepers) == 2 and all(keeper.holds(tenant) for keeper in keepers):
                both.append(time.monotonic())
            await asyncio.sleep(0.005)

    b = await start("b", shard_ids=[1], shard_count=2)
    sampler = asyncio.create_task(never_both())
    guild.also_in(b)
    await until(lambda: hosted(b, guild).community.feed is not None)
    assert hosted(a, guild).community.feed is None  # handed back

    assert b.host is not None and b.host.keeper is not None and b.membership is not None
    await b.host.keeper.stop(release=False)  # b dies: no renewal, no heartbeat
    await b.membership.stop()
    await until(lambda: hosted(a, guild).community.feed is not None)
    sampler.cancel()
    assert both == []
