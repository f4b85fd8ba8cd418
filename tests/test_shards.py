"""Sharding: discord.shard_ids/shard_count from the file, the environment and `run --shard-ids/
--shard-count`; a sharded bot over the loopback gateway identifying only its shards and seeing
only their guilds; and hosted mode's first READY forgetting no guild another process carries."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot import create_bot
from bot.__main__ import main
from bot.cli import startup_line, with_shards
from bot.config import ConfigError, DiscordSettings, load_settings
from bot.core import DispatchBot
from bot.hosting.registry import Registry
from bot.hosting.secrets import SecretBox
from bot.shards import ShardedDispatchBot, new_bot

from .doubles.discord_fakes import FakeDiscord
from .doubles.discord_server import DiscordServer
from .doubles.fake_cad import FakeCad
from .doubles.fake_gateway import FakeGateway, guild_payload, shard_of, text_channel
from .helpers import DISCORD_TOKEN
from .test_hosting import MASTER_KEY, hosted_settings
from .test_operations import read_until, run_offline


def guild_on(shard: int, count: int, n: int = 0) -> str:
    """A guild id that Discord puts on `shard` of `count`."""
    return str((count * (1_000_000 + n) + shard) << 22)


def hosted_toml(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "hosted.toml"
    config.write_text(
        f'[discord]\ntoken = "{DISCORD_TOKEN}"\n{extra}'
        f"[hosting]\nenabled = true\nallow_private_api_urls = true\n"
        f'[state]\npath = "{tmp_path / "hosting.sqlite3"}"\n'
    )
    return config


# --- configuration and flags ------------------------------------------------------------------------


def test_the_shards_a_process_runs() -> None:
    assert DiscordSettings(token="t").shard_list() == []
    assert DiscordSettings(token="t", shard_count=3).shard_list() == [0, 1, 2]
    two_of_four = DiscordSettings(token="t", shard_count=4, shard_ids=[3, 1])
    assert two_of_four.shard_list() == [1, 3]
    assert [shard_of(guild_on(s, 4), 4) for s in range(4)] == [0, 1, 2, 3]
    assert [two_of_four.runs_guild(int(guild_on(s, 4))) for s in range(4)] == [False, True, False, True]
    assert DiscordSettings(token="t", shard_count=4).runs_guild(int(guild_on(2, 4)))


def test_the_flags_override_the_file(tmp_path: Path) -> None:
    settings = hosted_settings(tmp_path)
    both = with_shards(settings, "0,1", "4").discord
    assert (both.shard_ids, both.shard_count, both.sharded) == ([0, 1], 4, True)
    alone = with_shards(settings, None, "2").discord
    assert (alone.shard_ids, alone.shard_count, alone.shard_list()) == (None, 2, [0, 1])
    filed = settings.model_copy(update={"discord": DiscordSettings(token=DISCORD_TOKEN, shard_count=4)})
    ids_alone = with_shards(filed, " 3 ", None).discord
    assert (ids_alone.shard_ids, ids_alone.shard_count) == ([3], 4)  # the file's count
    assert with_shards(settings, None, None) is settings
    assert "gateway shards 0,1 of 4" in startup_line(with_shards(settings, "1,0", "4"), None)
    assert "shards" not in startup_line(settings, None)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--shard-ids", "0,4", "--shard-count", "4"], "--shard-ids: expected distinct shard numbers from 0 to 3"),
        (["--shard-ids", "1,1", "--shard-count", "4"], "--shard-ids: expected distinct shard numbers from 0 to 3"),
        (["--shard-ids", "one", "--shard-count", "4"], "--shard-ids: expected shard numbers separated by commas"),
        (["--shard-ids", ",", "--shard-count", "4"], "--shard-ids: expected distinct shard numbers"),
        (["--shard-ids", "0"], "--shard-ids needs --shard-count"),
        (["--shard-count", "0"], "--shard-count: expected 1 or more shards, got 0"),
        (["--shard-count", "two"], "--shard-count: expected a whole number of shards, got 'two'"),
    ],
)
def test_wrong_flags_stop_the_run_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], said: str
) -> None:
    assert main(["run", "--config", str(hosted_toml(tmp_path)), *flags]) == 2  # as any configuration error
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert line.startswith(f"configuration error: {said}"), line
    assert out == "" and DISCORD_TOKEN not in err


@pytest.mark.parametrize("ids", ["0,2", "[0, 2]"])
def test_the_environment_sets_the_shards(tmp_path: Path, ids: str) -> None:
    environ = {"SONORAN_BOT_DISCORD__SHARD_IDS": ids, "SONORAN_BOT_DISCORD__SHARD_COUNT": "3"}
    shards = load_settings(hosted_toml(tmp_path), environ).discord
    assert (shards.shard_ids, shards.shard_count) == ([0, 2], 3)


def test_shards_out_of_range_from_the_file_or_the_environment_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"discord.shard_ids must be distinct numbers from 0 to 1"):
        load_settings(hosted_toml(tmp_path, "shard_ids = [2]\nshard_count = 2\n"), {})
    environ = {"SONORAN_BOT_DISCORD__SHARD_IDS": "5"}
    with pytest.raises(ConfigError, match=r"discord.shard_ids needs discord.shard_count"):
        load_settings(hosted_toml(tmp_path), environ)


async def test_the_bot_is_sharded_only_when_the_settings_say(tmp_path: Path) -> None:
    # (`async with`: discord.py's AutoShardedClient cannot close before it was entered or logged in)
    async with create_bot(hosted_settings(tmp_path)) as plain:
        assert type(plain) is DispatchBot
    async with create_bot(with_shards(hosted_settings(tmp_path), "2,0", "3")) as sharded:
        assert isinstance(sharded, ShardedDispatchBot) and isinstance(sharded, DispatchBot)
        assert (sharded.shard_ids, sharded.shard_count) == ([0, 2], 3)
        assert "shards=[0, 2]/3" in repr(sharded)
    async with new_bot(hosted_settings(tmp_path), autostart_feed=False) as bot:
        assert type(bot) is DispatchBot


# --- a sharded hosted bot over the loopback gateway -------------------------------------------------


async def link_guilds(tmp_path: Path, cad: FakeCad, guild_ids: list[str]) -> None:
    """The registry as /setup leaves it: every guild linked to the one community of `cad`."""
    registry = await Registry.open(tmp_path / "hosting.sqlite3", SecretBox([MASTER_KEY]))
    try:
        for guild_id in guild_ids:
            await registry.link(int(guild_id), community_id=cad.community_id, api_key=cad.api_key, api_url=cad.url)
    finally:
        await registry.close()


@contextlib.asynccontextmanager
async def connected(bot: DispatchBot) -> AsyncIterator[None]:
    """`bot` logged in and on the gateway until its first `on_ready` has run to the end."""

    async def at_once(shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s between two shards' IDENTIFY (Discord's rate): not here

    bot.before_identify_hook = at_once  # type: ignore[method-assign]
    bot._connection.guild_ready_timeout = 0.2  # each shard waits that long for more GUILD_CREATEs
    await bot.login("fake-token")
    gateway = asyncio.create_task(bot.connect(), name="gateway")
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 30)
        handlers = [t for t in asyncio.all_tasks() if t.get_name() == "discord.py: on_ready"]
        await asyncio.gather(*handlers)
        yield
    finally:
        await bot.close()
        await gateway


async def test_two_shards_of_three_see_their_guilds_and_forget_none_of_another_process(
    discord_api: FakeDiscord, cad: FakeCad, tmp_path: Path
) -> None:
    here = [guild_on(0, 3), guild_on(1, 3), guild_on(1, 3, 1)]
    elsewhere = guild_on(2, 3)  # linked, on a shard another process runs: in no READY of this one
    gone = guild_on(0, 3, 2)  # linked, on shard 0, but the bot was removed from it while down
    await link_guilds(tmp_path, cad, [*here, elsewhere, gone])
    guilds = [guild_payload([text_channel(100 + n)], guild_id=g, name=f"g{n}") for n, g in enumerate(here)]
    gateway = FakeGateway(guilds=[*guilds, guild_payload([], guild_id=elsewhere)])
    discord_api.serve_gateway(await gateway.start())
    bot = new_bot(with_shards(hosted_settings(tmp_path), "0,1", "3"), autostart_feed=False)
    assert isinstance(bot, ShardedDispatchBot)
    try:
        async with connected(bot):
            assert sorted(gateway.shards_identified) == [(0, 3), (1, 3)]
            assert sorted(bot.shards) == [0, 1]
            assert sorted(str(guild.id) for guild in bot.guilds) == sorted(here)
            assert {guild.shard_id for guild in bot.guilds} == {0, 1}
            assert bot.host is not None
            registry = bot.host.registry
            assert await registry.guild(int(elsewhere)) is not None  # kept: its own process judges it
            assert bot.communities.find(int(elsewhere)) is not None
            assert await registry.guild(int(gone)) is None  # this process's shard: forgotten
            assert all([await registry.guild(int(g)) is not None for g in here])
            assert len(bot.latencies) == 2
    finally:
        await gateway.close()


async def test_without_shards_one_connection_gets_every_guild(discord_api: FakeDiscord, tmp_path: Path) -> None:
    ids = [guild_on(0, 3), guild_on(2, 3)]
    gateway = FakeGateway(guilds=[guild_payload([], guild_id=g) for g in ids])
    discord_api.serve_gateway(await gateway.start())
    bot = new_bot(hosted_settings(tmp_path), autostart_feed=False)
    try:
        async with connected(bot):
            assert gateway.shards_identified == [(0, 1)]
            assert sorted(str(guild.id) for guild in bot.guilds) == sorted(ids)
    finally:
        await gateway.close()


# --- the real CLI in its own process ----------------------------------------------------------------


async def test_run_with_shard_flags_identifies_that_shard_only(tmp_path: Path) -> None:
    config = hosted_toml(tmp_path)
    on_one, on_zero = guild_on(1, 2), guild_on(0, 2)
    gateway = FakeGateway(guilds=[guild_payload([], guild_id=on_one), guild_payload([], guild_id=on_zero)])
    server = DiscordServer(FakeDiscord(None), await gateway.start())  # type: ignore[arg-type]
    env = {
        "FAKE_DISCORD_URL": await server.start(),
        "FAKE_GATEWAY_URL": gateway.url,
        "SONORAN_BOT_HOSTING__SECRET_KEYS": Fernet.generate_key().decode(),
    }
    try:
        process = await run_offline(config, env, extra=["--shard-ids", "1", "--shard-count", "2"])
        try:
            seen = await read_until(process, "connected to Discord as dispatch-bot in 1 guild(s)", seconds=60)
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
    finally:
        await server.close()
        await gateway.close()
    assert "gateway shards 1 of 2" in seen
    assert gateway.shards_identified == [(1, 2)]
    assert code == 0
