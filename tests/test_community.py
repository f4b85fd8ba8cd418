"""The community is the unit of the house: every interaction finds its community through the
registry (`bot.communities`) from its guild, and the TOML file's one community answers for every
guild, as the bot always has."""

from __future__ import annotations

from typing import Any

from bot.app import build_community
from bot.community import Communities, NoCommunity
from bot.core import DispatchBot

from .conftest import BotFactory
from .doubles.discord_fakes import GUILD_ID, USER_ID, FakeDiscord, dispatch_interaction, slash
from .doubles.fake_cad import FakeCad

FEED, OTHER_FEED = 1001, 1002
CALL = {"location": "Legion Square", "description": "Man down"}


def _reply(discord_api: FakeDiscord) -> str:
    replies: list[dict[str, Any]] = discord_api.replies()
    return str(replies[-1].get("data", {}).get("content", ""))


async def test_the_toml_file_is_one_community_that_answers_for_every_guild(make_bot: BotFactory) -> None:
    bot = await make_bot()
    (community,) = bot.communities
    assert community is bot.community
    assert bot.communities.for_guild(int(GUILD_ID)) is community
    assert bot.communities.for_guild(42) is community
    assert bot.communities.for_guild(None) is community
    assert community.settings is bot.settings and community.sonoran is bot.sonoran
    assert community.feed is bot.feed and community.audit is bot.audit


def test_an_empty_registry_answers_for_no_guild() -> None:
    registry = Communities()
    assert registry.find(1) is None and len(registry) == 0
    try:
        registry.for_guild(1)
    except NoCommunity as refused:
        assert refused.guild_id == 1
    else:
        raise AssertionError("a guild without a community was answered")


async def test_a_guild_no_community_serves_is_told_so_and_the_cad_hears_nothing(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot()
    elsewhere = Communities()
    elsewhere.link(int(GUILD_ID) + 1, bot.community)  # the bot's only community serves another guild
    bot.communities = elsewhere
    await dispatch_interaction(bot, slash("911", CALL))
    assert "not set up with a Sonoran CAD community" in _reply(discord_api)
    assert cad.operations() == []


async def test_each_guild_reaches_its_own_communitys_desk(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot: DispatchBot = await make_bot()
    home = bot.community
    other = build_community(bot, bot.settings, bot.services, serve=False)
    bot.communities.link(int(GUILD_ID), other)
    await dispatch_interaction(bot, slash("911", CALL))
    assert cad.operations() == ["call_911"]
    # the member's cooldown was started at the desk of the guild's community, and only there
    assert int(USER_ID) in other.desk.cooldowns._until
    assert int(USER_ID) not in home.desk.cooldowns._until


async def test_poll_once_runs_one_cycle_over_every_feed_of_every_community(
    make_bot: BotFactory, cad: FakeCad, discord_api: FakeDiscord
) -> None:
    bot = await make_bot(feeds=[{"server_id": 1, "channel_id": FEED, "calls": ["emergency", "civil"]}])
    settings = bot.settings.model_copy(
        update={"feeds": [bot.settings.feeds[0].model_copy(update={"channel_id": OTHER_FEED})]}
    )
    second = build_community(bot, settings, bot.services, serve=True)
    await second.start(poll=False)
    try:
        bot.communities.link(int(GUILD_ID), second)
        cad.add_911("Shots fired")
        cog: Any = bot.get_cog("Feed")
        await cog.poll_once()
        assert len(discord_api.channel_messages(FEED)) == 1
        assert len(discord_api.channel_messages(OTHER_FEED)) == 1
    finally:
        await second.stop()


async def test_sync_builds_communities_that_serve_nothing(make_bot: BotFactory) -> None:
    bot = await make_bot()
    idle = build_community(bot, bot.settings, bot.services, serve=False)
    assert idle.feed is None and idle.units is None
    await idle.start(poll=True)  # nothing to start: no engine, no writer, no port
    await idle.stop()


def test_the_units_and_delivery_import_nothing_of_the_feed_and_the_feed_nothing_of_intake() -> None:
    """Delivery is a floor of its own, used by the feed and the units alike; the feed engine takes
    events from intake, not the other way round."""
    import subprocess
    import sys

    probe = (
        "import sys, bot.units.engine, bot.units.lanes, bot.units.acknowledge, bot.delivery.channels\n"
        "assert not [m for m in sys.modules if m.startswith(('bot.feed', 'bot.intake'))], sorted(sys.modules)\n"
        "import bot.feed.engine\n"
        "assert not [m for m in sys.modules if m.startswith('bot.intake')], sorted(sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


async def test_a_bot_that_does_not_serve_has_communities_but_no_engine_and_no_intake(
    cad: FakeCad, discord_api: FakeDiscord
) -> None:
    from bot.services import open_services

    from .helpers import DISCORD_TOKEN, make_settings

    settings = make_settings(
        cad.url,
        feeds=[{"server_id": 1, "channel_id": FEED}],
        push={"enabled": True, "host": "127.0.0.1", "port": 0},
    )
    async with open_services(settings, with_store=False) as services:
        bot = DispatchBot(settings, services, sync_on_start=False, serve=False)
        try:
            await bot.login(DISCORD_TOKEN)
            (community,) = bot.communities
            assert community.feed is None and community.units is None and bot.intake is None
            assert bot.get_cog("Dispatch") is not None and bot.get_cog("Feed") is not None
        finally:
            await bot.close()


async def test_a_second_login_builds_nothing_twice_and_close_stops_what_runs(make_bot: BotFactory) -> None:
    """`run` calls login() again after a network failure, and login() runs setup_hook each time:
    the running community (its poll loop, writers, listener) stays the one, and close() stops it."""
    from .test_push import push_settings

    bot = await make_bot(feeds=[{"server_id": 1, "channel_id": 1001}], push=push_settings(), autostart_feed=True)
    community, intake = bot.community, bot.intake
    assert community.feed is not None and community.feed.polling and intake is not None
    await bot.setup_hook()  # as a retried login() does: no second community, no second bind
    assert list(bot.communities) == [community] and bot.intake is intake
    await bot.close()
    assert not community.feed.polling and bot.intake is None
