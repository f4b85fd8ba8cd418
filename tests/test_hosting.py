"""Hosted mode end to end: /setup through the real command tree (the modal, the checks against a
CAD on loopback, the channels and roles from Discord's options), two communities side by side,
removal from a guild, and what is kept at rest."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot.config import Settings
from bot.core import DispatchBot
from bot.db import PostgresDatabase
from bot.hosting.plan import community_schema, community_state_path

from .doubles.discord_fakes import (
    BOT_ID,
    MANAGE_GUILD,
    USER_ID,
    FakeDiscord,
    button,
    button_id,
    dispatch_interaction,
    modal_submit,
    slash,
    snowflake,
)
from .doubles.fake_cad import FakeCad
from .helpers import DISCORD_TOKEN

MASTER_KEY = Fernet.generate_key().decode()
OTHER_ADMIN = "565656565656565656"
# the bot's own role: every permission but Administrator (which would hide a missing overwrite)
BOT_PERMISSIONS = ((1 << 41) - 1) & ~(1 << 3)
SEND_MESSAGES = 1 << 11


def hosted_settings(
    tmp_path: Path, *, state_url: str | None = None, schema: str | None = None, **hosting: Any
) -> Settings:
    return Settings(
        discord={"token": DISCORD_TOKEN, "guild_ids": []},
        state={"path": str(tmp_path / "hosting.sqlite3"), "url": state_url, "schema_name": schema},
        hosting={"enabled": True, "secret_keys": MASTER_KEY, "allow_private_api_urls": True, **hosting},
    )


class Guild:
    """A Discord server in the bot's cache: its channels (one that the bot may not post in) and roles."""

    def __init__(self, bot: DispatchBot, guild_id: str | None = None) -> None:
        self.id = guild_id or snowflake()
        self.feed = snowflake()
        self.audit = snowflake()
        self.mute = snowflake()  # the bot may not send messages here
        self.role = snowflake()
        self.bot_role = snowflake()
        channel_names = {self.feed: "calls", self.audit: "audit", self.mute: "read-only"}
        self.channels = {
            channel_id: {
                "id": channel_id,
                "type": 0,
                "guild_id": self.id,
                "name": name,
                "position": 0,
                "permission_overwrites": (
                    [{"id": self.bot_role, "type": 0, "allow": "0", "deny": str(SEND_MESSAGES)}]
                    if channel_id == self.mute
                    else []
                ),
            }
            for channel_id, name in channel_names.items()
        }
        roles = [
            _role(self.id, "@everyone", 0),
            _role(self.role, "dispatch", 0),
            _role(self.bot_role, "bot", BOT_PERMISSIONS),
        ]
        guild: Any = {
            "id": self.id,
            "name": f"guild {self.id[-4:]}",
            "owner_id": USER_ID,
            "roles": roles,
            "channels": list(self.channels.values()),
            "members": [
                {
                    "user": {"id": BOT_ID, "username": "dispatch-bot", "discriminator": "0", "avatar": None},
                    "roles": [self.bot_role],
                    "joined_at": "2024-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "member_count": 2,
            "features": [],
            "emojis": [],
            "stickers": [],
            "unavailable": False,
        }
        bot._connection._add_guild_from_data(guild)
        self.payload = guild
        self.roles = {role["id"]: role for role in roles}

    def also_in(self, bot: DispatchBot) -> None:
        """The same server in another bot's cache (another process of a cluster)."""
        bot._connection._add_guild_from_data(self.payload)

    def setup(
        self, sub: str, *, permissions: int = MANAGE_GUILD, user_id: str = USER_ID, **options: Any
    ) -> dict[str, Any]:
        """/setup <sub> as Discord sends it: channels and roles as ids with their resolved data."""
        payload = slash("setup", permissions=permissions, user_id=user_id)
        resolved: dict[str, dict[str, Any]] = {}
        values = []
        for name, value in options.items():
            if isinstance(value, tuple):  # ("channel", id) or ("role", id)
                kind, snowflake_id = value
                values.append({"name": name, "type": 7 if kind == "channel" else 8, "value": snowflake_id})
                data = self.channels[snowflake_id] if kind == "channel" else self.roles[snowflake_id]
                resolved.setdefault(f"{kind}s", {})[snowflake_id] = (
                    {**data, "permissions": "0"} if kind == "channel" else data
                )
            else:
                option_type = {str: 3, int: 4, bool: 5, float: 10}[type(value)]
                values.append({"name": name, "type": option_type, "value": value})
        payload["data"]["options"] = [{"name": sub, "type": 1, "options": values}]
        if resolved:
            payload["data"]["resolved"] = resolved
        return self.here(payload)

    def here(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload["guild_id"] = self.id
        payload["channel"]["guild_id"] = self.id
        return payload

    def form(self, cad: FakeCad, *, key: str | None = None, community: str | None = None) -> dict[str, Any]:
        return self.here(
            modal_submit(
                "setup:cad",
                {
                    "setup:community_id": community or cad.community_id,
                    "setup:api_key": key or cad.api_key,
                    "setup:api_url": cad.url,
                },
            )
        )


def _role(role_id: str, name: str, permissions: int) -> dict[str, Any]:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "hoist": False,
        "position": 0,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": True,
        "flags": 0,
    }


HostedBot = Callable[..., Awaitable[DispatchBot]]


@pytest.fixture
async def hosted_bot(discord_api: FakeDiscord, tmp_path: Path) -> AsyncIterator[HostedBot]:
    async with contextlib.AsyncExitStack() as stack:

        async def factory(**hosting: Any) -> DispatchBot:
            bot = DispatchBot(hosted_settings(tmp_path, **hosting), autostart_feed=False)
            stack.push_async_callback(bot.close)
            await bot.login("fake-token")
            return bot

        yield factory


@pytest.fixture
async def cads() -> AsyncIterator[Callable[..., Awaitable[FakeCad]]]:
    started: list[FakeCad] = []

    async def factory(**kwargs: Any) -> FakeCad:
        cad = FakeCad(**kwargs)
        await cad.start()
        started.append(cad)
        return cad

    yield factory
    for cad in started:
        await cad.close()


def last_reply(discord_api: FakeDiscord) -> str:
    """What the bot said last in answer to an interaction (a reply or a followup), in sent order."""
    said = [message["content"] for message in discord_api.interaction_messages if message.get("content")]
    return str(said[-1])


async def link(bot: DispatchBot, guild: Guild, cad: FakeCad, discord_api: FakeDiscord, **form: Any) -> str:
    await dispatch_interaction(bot, guild.setup("cad"))
    await dispatch_interaction(bot, guild.form(cad, **form))
    return last_reply(discord_api)


def files_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.rglob("*") if path.is_file())


async def test_setup_cad_opens_a_form_with_the_three_inputs(hosted_bot: HostedBot, discord_api: FakeDiscord) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await dispatch_interaction(bot, guild.setup("cad"))
    (modal,) = [reply for reply in discord_api.replies() if reply.get("type") == 9]
    labels = [row["components"][0]["label"] for row in modal["data"]["components"]]
    assert labels == ["Community ID", "API key", "API URL"]
    assert [row["components"][0]["required"] for row in modal["data"]["components"]] == [True, True, False]


async def test_setup_end_to_end_links_sets_a_feed_and_posts_a_call(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any, tmp_path: Path
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    cad = await cads(api_key="key-OF-COMMUNITY-A-0123456789")
    reply = await link(bot, guild, cad, discord_api)
    assert reply.startswith(f"Linked to community {cad.community_id}")
    await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.feed), calls="emergency"))
    assert last_reply(discord_api).startswith("Done: feed #calls: server 1, emergency")
    cad.add_911("Jane Roe", "Legion Square", "Robbery in progress")
    await bot.get_cog("Feed").poll_once()  # type: ignore[union-attr]
    (post,) = discord_api.channel_messages(guild.feed)
    assert "Legion Square" in str(post["embeds"])
    # never the key: not in a reply, not in the files the bot keeps
    assert all(cad.api_key not in str(reply) for reply in discord_api.replies())
    assert cad.api_key.encode() not in files_bytes(tmp_path)


@pytest.mark.parametrize(
    ("make", "form", "said"),
    [
        ({}, {"key": "not-the-key"}, "The CAD refused that API key"),
        ({"plan": 0}, {}, "upgrade the Sonoran plan first"),
    ],
    ids=["wrong key", "plan too low"],
)
async def test_setup_cad_stores_nothing_the_cad_refuses(
    hosted_bot: HostedBot,
    discord_api: FakeDiscord,
    cads: Any,
    tmp_path: Path,
    make: dict[str, Any],
    form: dict[str, Any],
    said: str,
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    cad = await cads(**make)
    reply = await link(bot, guild, cad, discord_api, **form)
    assert reply.startswith("Nothing was stored.") and said in reply
    assert bot.host is not None and await bot.host.registry.count_tenants() == 0
    assert not (tmp_path / "communities").exists() or not list((tmp_path / "communities").iterdir())
    await dispatch_interaction(bot, guild.setup("show"))
    assert "run /setup cad first" in last_reply(discord_api)


async def test_setup_cad_with_an_unreachable_url_stores_nothing(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    cad = await cads()
    await cad.close()  # nothing listens there any more
    reply = await link(bot, guild, cad, discord_api)
    assert reply.startswith("Nothing was stored.") and "did not answer" in reply
    assert bot.host is not None and await bot.host.registry.count_tenants() == 0


async def test_setup_needs_manage_server_and_a_linked_community(
    hosted_bot: HostedBot, discord_api: FakeDiscord
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await dispatch_interaction(bot, guild.setup("show", permissions=0))
    assert "Manage Server" in last_reply(discord_api)
    await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.feed)))
    assert "run /setup cad first" in last_reply(discord_api)
    await dispatch_interaction(bot, guild.here(slash("calls")))
    assert "/setup cad" in last_reply(discord_api)


async def test_a_channel_the_bot_cannot_post_in_is_refused(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await link(bot, guild, await cads(), discord_api)
    await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.mute)))
    reply = last_reply(discord_api)
    assert "cannot post in #read-only" in reply and "Send Messages" in reply
    assert bot.host is not None and bot.host.guild_config(int(guild.id)).feeds == []


async def test_roles_toggle_and_every_change_is_audited_without_the_key(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    cad = await cads(api_key="key-OF-COMMUNITY-A-0123456789")
    await link(bot, guild, cad, discord_api)
    await dispatch_interaction(bot, guild.setup("audit", channel=("channel", guild.audit)))
    await dispatch_interaction(bot, guild.setup("dispatcher-role", role=("role", guild.role)))
    assert bot.host is not None
    assert bot.host.guild_config(int(guild.id)).dispatcher_role_ids == [int(guild.role)]
    await dispatch_interaction(bot, guild.setup("dispatcher-role", role=("role", guild.role)))
    assert bot.host.guild_config(int(guild.id)).dispatcher_role_ids == []
    changes = await bot.host.registry.changes(int(guild.id))
    whats = [change.what for change in changes]
    assert any("linked community" in what for what in whats) and "audit channel #audit" in whats
    assert "added dispatcher role @dispatch" in whats and "removed dispatcher role @dispatch" in whats
    community = bot.communities.for_guild(int(guild.id))
    audit = community.audit_log(int(guild.id))
    assert audit is not None
    await audit.flush()
    posted = str(discord_api.channel_messages(guild.audit))
    assert "removed dispatcher role" in posted and cad.api_key not in posted
    await dispatch_interaction(bot, guild.setup("show"))
    shown = last_reply(discord_api)
    assert bot.host.hosted_for(int(guild.id)) is not None
    assert bot.host.hosted_for(int(guild.id)).tenant.fingerprint in shown  # type: ignore[union-attr]
    assert cad.api_key not in shown


async def test_two_communities_side_by_side_never_meet(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild_a, guild_b = Guild(bot), Guild(bot)
    cad_a = await cads(api_key="key-A-0123456789")
    cad_b = await cads(api_key="key-B-0123456789")
    await link(bot, guild_a, cad_a, discord_api)
    await link(bot, guild_b, cad_b, discord_api)
    await dispatch_interaction(bot, guild_a.setup("feed", channel=("channel", guild_a.feed)))
    await dispatch_interaction(bot, guild_b.setup("feed", channel=("channel", guild_b.feed)))
    call_a = cad_a.add_911("Alice", "Paleto Bay", "A's call")
    cad_b.add_911("Bob", "Sandy Shores", "B's call")
    await bot.get_cog("Feed").poll_once()  # type: ignore[union-attr]
    posted_a = str(discord_api.channel_messages(guild_a.feed))
    posted_b = str(discord_api.channel_messages(guild_b.feed))
    assert "Paleto Bay" in posted_a and "Sandy Shores" not in posted_a
    assert "Sandy Shores" in posted_b and "Paleto Bay" not in posted_b
    # a member of B clicks a crafted button naming A's call, in A's feed channel: refused, and A's CAD
    # hears nothing of it
    requests_before = len(cad_a.requests)
    (card_a,) = discord_api.channel_messages(guild_a.feed)
    remove = button_id(card_a, "Remove")
    assert remove == f"card:remove:1:{call_a}"
    crafted = guild_b.here(button(remove, card_a["id"], message=card_a, permissions=MANAGE_GUILD))
    crafted["channel_id"] = guild_a.feed
    await dispatch_interaction(bot, crafted)
    assert last_reply(discord_api) == f"Call #{call_a} is not shown in this channel."
    assert len(cad_a.requests) == requests_before and call_a in cad_a.servers[1].emergency
    # A's CAD hangs (then 429s): B's feed posts its new call while A's poll is still waiting
    cad_a.fail_next("get_calls", delay=3.0, passthrough=True)
    cad_a.fail_next("get_calls", status=429, body='{"message": "Too Many Requests"}', content_type="application/json")
    cad_b.add_911("Carol", "Grapeseed", "B's second call")
    engine_a = bot.communities.for_guild(int(guild_a.id)).feed
    engine_b = bot.communities.for_guild(int(guild_b.id)).feed
    assert engine_a is not None and engine_b is not None
    poll_a = asyncio.ensure_future(engine_a.poll_once())
    poll_b = asyncio.ensure_future(engine_b.poll_once())
    done, _ = await asyncio.wait({poll_a, poll_b}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {poll_b} and "Grapeseed" in str(discord_api.channel_messages(guild_b.feed))
    await poll_a
    await engine_a.poll_once()  # the 429: A backs off, B is not asked to
    assert "Grapeseed" in str(discord_api.channel_messages(guild_b.feed))


async def test_two_servers_share_one_community(hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any) -> None:
    bot = await hosted_bot()
    main, department = Guild(bot), Guild(bot)
    cad = await cads()
    await link(bot, main, cad, discord_api)
    reply = await link(bot, department, cad, discord_api)
    assert reply.startswith("Linked")
    assert bot.communities.for_guild(int(main.id)) is bot.communities.for_guild(int(department.id))
    assert bot.host is not None and len(bot.host) == 1
    await dispatch_interaction(bot, main.setup("feed", channel=("channel", main.feed)))
    await dispatch_interaction(bot, department.setup("feed", channel=("channel", department.feed)))
    community = bot.communities.for_guild(int(main.id))
    assert {feed.channel_id for feed in community.settings.feeds} == {int(main.feed), int(department.feed)}
    cad.add_911("Dave", "Vinewood", "One call for both servers")
    await bot.get_cog("Feed").poll_once()  # type: ignore[union-attr]
    assert len(discord_api.channel_messages(main.feed)) == 1
    assert len(discord_api.channel_messages(department.feed)) == 1


async def test_removed_from_its_last_server_the_community_is_deleted(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any, tmp_path: Path
) -> None:
    bot = await hosted_bot()
    main, department = Guild(bot), Guild(bot)
    cad = await cads()
    await link(bot, main, cad, discord_api)
    await link(bot, department, cad, discord_api)
    assert bot.host is not None
    hosted = bot.host.hosted_for(int(main.id))
    assert hosted is not None
    state = community_state_path(bot.settings, hosted.tenant.id)
    assert state.exists()
    await bot.on_guild_remove(bot.get_guild(int(department.id)))  # type: ignore[arg-type]
    assert bot.communities.find(int(department.id)) is None
    assert await bot.host.registry.count_tenants() == 1 and state.exists()
    await bot.on_guild_remove(bot.get_guild(int(main.id)))  # type: ignore[arg-type]
    assert bot.communities.find(int(main.id)) is None and len(bot.host) == 0
    assert await bot.host.registry.count_tenants() == 0 and not state.exists()


async def test_on_postgresql_each_community_has_its_schema_dropped_with_its_last_server(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any, tmp_path: Path, pg_url: str, pg_schema: str
) -> None:
    """state.url on PostgreSQL: the registry in a schema of its own (state.schema_name; by default
    `hosting`), two hosted communities each in a schema of its own on one server, each posting its
    own calls; removed, a community's schema is dropped, the other's kept."""
    bot = await hosted_bot(state_url=pg_url, schema=pg_schema)
    guild_a, guild_b = Guild(bot), Guild(bot)
    await link(bot, guild_a, await cads(api_key="key-A-0123456789"), discord_api)
    await link(bot, guild_b, cad_b := await cads(api_key="key-B-0123456789"), discord_api)
    for guild in (guild_a, guild_b):
        await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.feed)))
    cad_b.add_911("Bob", "Sandy Shores", "B's call")
    await bot.get_cog("Feed").poll_once()  # type: ignore[union-attr]
    assert "Sandy Shores" in str(discord_api.channel_messages(guild_b.feed))
    assert bot.host is not None
    hosted_a, hosted_b = bot.host.hosted_for(int(guild_a.id)), bot.host.hosted_for(int(guild_b.id))
    assert hosted_a is not None and hosted_b is not None
    store_a, store_b = hosted_a.community.store, hosted_b.community.store
    assert isinstance(store_a.db, PostgresDatabase) and isinstance(store_b.db, PostgresDatabase)
    assert store_b.db.schema == community_schema(hosted_b.tenant.id) != store_a.db.schema
    assert (
        len(await store_b.fetch("SELECT call_id FROM posts")) == 1 and await store_a.fetch("SELECT * FROM posts") == []
    )
    assert not (tmp_path / "communities").exists() or not any((tmp_path / "communities").iterdir())

    async def schemas() -> set[str]:
        rows = await store_b.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'community_%'")
        return {row["nspname"] for row in rows}

    assert {store_a.db.schema, store_b.db.schema} <= await schemas()
    await bot.on_guild_remove(bot.get_guild(int(guild_a.id)))  # type: ignore[arg-type]
    assert store_a.db.schema not in await schemas() and store_b.db.schema in await schemas()
    assert len(await store_b.fetch("SELECT call_id FROM posts")) == 1
    assert bot.host.registry.schema == pg_schema
    assert len(await store_b.fetch(f'SELECT id FROM "{pg_schema}".tenants')) == 1  # the registry, on the server
    await bot.on_guild_remove(bot.get_guild(int(guild_b.id)))  # type: ignore[arg-type]
    assert await bot.host.registry.count_tenants() == 0
    assert not (tmp_path / "hosting.sqlite3").exists()


async def test_setup_remove_asks_first_then_deletes(hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await link(bot, guild, await cads(), discord_api)
    await dispatch_interaction(bot, guild.setup("remove"))
    question = discord_api.last_interaction_message()
    assert "last server" in question["content"]
    assert bot.host is not None and await bot.host.registry.count_tenants() == 1  # nothing yet
    remove = guild.here(button(button_id(question, "Remove"), question["id"], message=question))
    await dispatch_interaction(bot, remove)
    assert await bot.host.registry.count_tenants() == 0
    assert bot.communities.find(int(guild.id)) is None


async def test_a_restart_finds_every_community_again(discord_api: FakeDiscord, cads: Any, tmp_path: Path) -> None:
    cad = await cads()
    first = DispatchBot(hosted_settings(tmp_path), autostart_feed=False)
    await first.login("fake-token")
    guild = Guild(first)
    await link(first, guild, cad, discord_api)
    await dispatch_interaction(first, guild.setup("feed", channel=("channel", guild.feed)))
    await first.close()
    again = DispatchBot(hosted_settings(tmp_path), autostart_feed=False)
    try:
        await again.login("fake-token")
        community = again.communities.for_guild(int(guild.id))
        assert [feed.channel_id for feed in community.settings.feeds] == [int(guild.feed)]
    finally:
        await again.close()


async def test_a_wrong_master_key_stops_the_start_in_one_line(
    discord_api: FakeDiscord, cads: Any, tmp_path: Path
) -> None:
    cad = await cads()
    first = DispatchBot(hosted_settings(tmp_path), autostart_feed=False)
    await first.login("fake-token")
    await link(first, Guild(first), cad, discord_api)
    await first.close()
    other = Fernet.generate_key().decode()
    bot = DispatchBot(hosted_settings(tmp_path, secret_keys=other), autostart_feed=False)
    from bot.hosting.secrets import MasterKeyError

    with pytest.raises(MasterKeyError) as caught:
        await bot.login("fake-token")
    await bot.close()
    assert "\n" not in str(caught.value) and other not in str(caught.value) and MASTER_KEY not in str(caught.value)


def test_sync_in_hosted_mode_binds_nothing_and_needs_no_master_key(
    tmp_path: Path, discord_api: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sync` only declares the commands (with /setup): no registry opened, no port bound, even with
    the port held by a running bot and no master key in sight."""
    import socket

    from bot.cli import main

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "hosted.toml"
        config.write_text(
            f'[discord]\ntoken = "{DISCORD_TOKEN}"\n[hosting]\nenabled = true\n'
            f'[state]\npath = "{tmp_path / "hosting.sqlite3"}"\n'
            f'[push]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        )
        assert main(["sync", "--guild", "333333333333333333", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "registered" in out and "Traceback" not in err
    assert not (tmp_path / "hosting.sqlite3").exists()
    synced = discord_api.sent("PUT", r"/commands$")[-1]
    assert "setup" in {command["name"] for command in synced}


async def test_two_admins_changing_the_setup_at_once_lose_nothing(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await link(bot, guild, await cads(), discord_api)
    await dispatch_interaction(
        bot,
        guild.setup("feed", channel=("channel", guild.feed)),
        guild.setup("board", channel=("channel", guild.audit), user_id=OTHER_ADMIN),
        guild.setup("caller-role", role=("role", guild.role), user_id=OTHER_ADMIN),
    )
    assert bot.host is not None
    config = bot.host.guild_config(int(guild.id))
    assert [feed.channel_id for feed in config.feeds] == [int(guild.feed)]
    assert [board.channel_id for board in config.boards] == [int(guild.audit)]
    assert config.caller_role_ids == [int(guild.role)]
    community = bot.communities.for_guild(int(guild.id))
    assert community.caller_role_ids(int(guild.id)) == [int(guild.role)]
    assert [board.channel_id for board in community.settings.boards] == [int(guild.audit)]
    # and what the registry holds is what a restart would build
    linked = await bot.host.registry.guild(int(guild.id))
    assert linked is not None and linked.config == config


async def test_a_channel_or_role_of_another_server_is_refused(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild, other = Guild(bot), Guild(bot)
    await link(bot, guild, await cads(), discord_api)
    crafted = guild.setup("feed", channel=("channel", guild.feed))
    crafted["data"]["options"][0]["options"][0]["value"] = other.feed
    crafted["data"]["resolved"]["channels"] = {other.feed: {**other.channels[other.feed], "permissions": "0"}}
    await dispatch_interaction(bot, crafted)  # discord.py resolves no channel of this server from it
    assert last_reply(discord_api).startswith("The bot cannot see that channel")
    assert bot.host is not None and bot.host.guild_config(int(guild.id)).feeds == []
    role = guild.setup("dispatcher-role", role=("role", guild.role))
    role["data"]["options"][0]["options"][0]["value"] = other.role
    role["data"]["resolved"]["roles"] = {other.role: other.roles[other.role]}
    await dispatch_interaction(bot, role)
    assert last_reply(discord_api) == "That role is not in this server."
    assert bot.host.guild_config(int(guild.id)).dispatcher_role_ids == []


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/",
        "https://localhost./",
        "https://127.0.0.1/",
        "https://127.1/",
        "https://2130706433/",
        "https://0x7f000001/",
        "https://[::1]/",
        "https://10.0.0.8/",
        "https://169.254.169.254/",
        "https://metadata.google.internal./",
        "https://printer.local/",
        "http://api.sonorancad.com/",
        "https://user:pass@api.sonorancad.com/",
        "ftp://api.sonorancad.com/",
    ],
)
def test_an_api_url_into_the_hosts_own_network_is_refused(url: str) -> None:
    from bot.hosting.netguard import url_problem

    assert url_problem(url, allow_private=False) is not None
    assert url_problem("https://api.sonorancad.com", allow_private=False) is None
    assert url_problem("https://staging-api.dev.sonorancad.com/", allow_private=False) is None


async def test_a_public_name_that_resolves_to_a_private_address_is_refused_at_connect() -> None:
    import aiohttp

    from bot.hosting.netguard import hosted_connector

    async with aiohttp.ClientSession(connector=hosted_connector(4, allow_private=False)) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.get("https://localhost:1/v2/general/version")
    assert "not public" in str(refused.value.os_error)


async def test_another_server_cannot_take_a_community_over_with_its_own_key(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    """v2 names a community by its key alone: a second server typing the victim's Community ID with
    a key of its own is refused, and the victim's community keeps its key and its servers."""
    bot = await hosted_bot()
    victim, attacker = Guild(bot), Guild(bot)
    cad = await cads(api_key="the-VICTIMS-key-0123456789")
    await link(bot, victim, cad, discord_api)
    assert bot.host is not None
    before = bot.host.hosted_for(int(victim.id))
    assert before is not None
    fingerprint = before.tenant.fingerprint
    cad.api_key = "the-ATTACKERS-own-key-0123456789"  # a key the CAD accepts, but not the community's
    reply = await link(bot, attacker, cad, discord_api)
    assert "already set up from another server with another API key" in reply
    assert bot.communities.find(int(attacker.id)) is None
    after = bot.host.hosted_for(int(victim.id))
    assert after is not None and after.tenant.fingerprint == fingerprint and list(after.guilds) == [int(victim.id)]
    # the victim's own admins may replace their key
    reply = await link(bot, victim, cad, discord_api)
    assert reply.startswith("Linked")
    replaced = bot.host.hosted_for(int(victim.id))
    assert replaced is not None and replaced.tenant.fingerprint != fingerprint


async def test_a_community_that_cannot_start_leaves_nothing_behind(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.community import Community

    bot = await hosted_bot()
    guild = Guild(bot)

    async def broken(self: Community, *, poll: bool) -> None:
        raise RuntimeError("cannot start")

    monkeypatch.setattr(Community, "start", broken)
    reply = await link(bot, guild, await cads(), discord_api)
    assert reply.startswith("Nothing was kept")
    assert bot.host is not None and await bot.host.registry.count_tenants() == 0 and len(bot.host) == 0
    assert bot.communities.find(int(guild.id)) is None and len(bot.communities) == 0


async def test_a_rebuilt_community_refuses_pushes_to_its_old_engine(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    from bot.feed.engine import EngineStopped

    bot = await hosted_bot()
    guild = Guild(bot)
    await link(bot, guild, await cads(), discord_api)
    old = bot.communities.for_guild(int(guild.id))
    await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.feed)))
    new = bot.communities.for_guild(int(guild.id))
    assert new is not old and old.feed is not None
    with pytest.raises(EngineStopped):  # the listener answers 503: sent again, to the new engine
        await old.feed.take_events(1, [])
    assert new.push_token is not None and bot.communities.by_push_token(new.push_token) is new


async def test_the_removal_question_needs_manage_server_when_answered(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await link(bot, guild, await cads(), discord_api)
    await dispatch_interaction(bot, guild.setup("remove"))
    question = discord_api.last_interaction_message()
    remove = guild.here(button(button_id(question, "Remove"), question["id"], message=question, permissions=0))
    await dispatch_interaction(bot, remove)
    assert last_reply(discord_api) == "You need the Manage Server permission for that."
    assert bot.host is not None and await bot.host.registry.count_tenants() == 1


async def test_a_server_that_removed_the_bot_while_it_was_down_is_forgotten_at_ready(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    kept, gone = Guild(bot), Guild(bot)
    cad = await cads()
    await link(bot, kept, cad, discord_api)
    await link(bot, gone, cad, discord_api)
    bot._connection._remove_guild(bot.get_guild(int(gone.id)))  # type: ignore[arg-type]  # READY lists it no more
    await bot.on_ready()
    assert bot.communities.find(int(gone.id)) is None
    assert bot.communities.find(int(kept.id)) is not None
    assert bot.host is not None and await bot.host.registry.guild(int(gone.id)) is None


async def test_a_failed_restart_of_a_linked_community_deletes_nothing(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.community import Community

    bot = await hosted_bot()
    guild = Guild(bot)
    cad = await cads()
    await link(bot, guild, cad, discord_api)
    await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.feed)))

    async def broken(self: Community, *, poll: bool) -> None:
        raise RuntimeError("cannot start")

    monkeypatch.setattr(Community, "start", broken)
    reply = await link(bot, guild, cad, discord_api)  # the same community again: not a new link
    assert reply.startswith("The key was stored, but the community could not be restarted")
    assert bot.host is not None and await bot.host.registry.count_tenants() == 1
    linked = await bot.host.registry.guild(int(guild.id))
    assert linked is not None and [feed.channel_id for feed in linked.config.feeds] == [int(guild.feed)]


async def test_every_setup_answer_is_ephemeral(hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await link(bot, guild, await cads(), discord_api)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("feed", {"channel": ("channel", guild.feed), "ping_role": ("role", guild.role)}),
        ("feed", {"channel": ("channel", guild.mute)}),
        ("alerts", {"channel": ("channel", guild.feed)}),
        ("board", {"channel": ("channel", guild.feed)}),
        ("audit", {"channel": ("channel", guild.audit)}),
        ("caller-role", {"role": ("role", guild.role)}),
        ("cooldowns", {"call_911": 30.0}),
        ("show", {}),
        ("push-rotate", {}),
        ("feed-remove", {"channel": ("channel", guild.audit)}),
        ("remove", {}),
    ]
    for sub, options in steps:
        await dispatch_interaction(bot, guild.setup(sub, **options))
    answers = [reply for reply in discord_api.replies() if reply.get("type") != 9]  # 9: the form itself
    assert answers
    for answer in answers:
        flags = (answer.get("data") or answer).get("flags", 0)
        assert answer.get("type") == 7 or flags & 64, answer  # 7: the removal question's own message


async def test_a_feed_on_a_server_the_cad_does_not_have_is_refused(
    hosted_bot: HostedBot, discord_api: FakeDiscord, cads: Any
) -> None:
    bot = await hosted_bot()
    guild = Guild(bot)
    await link(bot, guild, await cads(servers=(1, 2)), discord_api)
    await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.feed), server=7))
    assert last_reply(discord_api) == "The CAD has no server 7 (it has 1, 2). Nothing was changed."
    assert bot.host is not None and bot.host.guild_config(int(guild.id)).feeds == []
    await dispatch_interaction(bot, guild.setup("feed", channel=("channel", guild.feed), server=2))
    assert last_reply(discord_api).startswith("Done: feed #calls: server 2")
