"""Hosted mode killed for real: the bot runs as its own process with a community set up in the
registry (its key sealed under the master key given in the environment), is SIGKILLed at random
moments while the CAD moves on, and is started again. What counts is the channel's final state:
every call the CAD still lists is shown once, as active; no call is shown twice."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from cryptography.fernet import Fernet

from bot.hosting.models import GuildConfig
from bot.hosting.registry import Registry
from bot.hosting.secrets import SecretBox

from .doubles.discord_fakes import GUILD_ID, FakeDiscord
from .doubles.discord_server import DiscordServer
from .doubles.fake_cad import FakeCad
from .doubles.fake_gateway import FakeGateway, guild_payload, text_channel
from .helpers import DISCORD_TOKEN
from .test_kill import Killer, channel_is_true, clean_run, killed_run
from .test_operations import FEED_CHANNEL, run_offline

ROUNDS = 6


async def set_up(tmp_path: Path, cad: FakeCad, master_key: str) -> Path:
    """The registry as /setup leaves it: the community linked from the guild, a feed in its channel."""
    registry = await Registry.open(tmp_path / "hosting.sqlite3", SecretBox([master_key]))
    try:
        await registry.link(int(GUILD_ID), community_id=cad.community_id, api_key=cad.api_key, api_url=cad.url)
        feed = {"server_id": 1, "channel_id": FEED_CHANNEL}
        await registry.save_config(int(GUILD_ID), GuildConfig.model_validate({"feeds": [feed]}))
    finally:
        await registry.close()
    config = tmp_path / "hosted.toml"
    config.write_text(
        f'[discord]\ntoken = "{DISCORD_TOKEN}"\n'
        f"[hosting]\nenabled = true\nallow_private_api_urls = true\n"
        f'[state]\npath = "{tmp_path / "hosting.sqlite3"}"\nhealth_file = "{tmp_path / "last-poll"}"\n'
    )
    return config


async def test_hosted_mode_under_sigkill_loses_nothing_and_posts_nothing_twice(cad: FakeCad, tmp_path: Path) -> None:
    cad.limits.clear()  # each restart polls at once: more than Sonoran's budget; this test is about kills
    master_key = Fernet.generate_key().decode()
    config = await set_up(tmp_path, cad, master_key)
    gateway = FakeGateway(guild_payload([text_channel(FEED_CHANNEL)]))
    fake = FakeDiscord(None)  # type: ignore[arg-type]
    server = DiscordServer(fake, await gateway.start())
    discord_url = await server.start()
    env = {
        "FAKE_DISCORD_URL": discord_url,
        "FAKE_GATEWAY_URL": gateway.url,
        "SONORAN_BOT_HOSTING__SECRET_KEYS": master_key,
    }
    health = tmp_path / "last-poll"
    rng = random.Random(20261207)
    kills: Counter[str] = Counter()
    try:
        for round_ in range(ROUNDS):
            for _ in range(rng.randint(1, 4)):
                cad.add_911(f"Caller {round_}", "Vespucci Blvd", "help " * rng.randint(1, 300))
            live = list(cad.servers[1].emergency)
            for call_id in rng.sample(live, k=min(len(live), rng.randint(0, 2))):
                cad.servers[1].emergency.pop(call_id)
            process = await run_offline(config, env, quiet=True)
            target = ("POST", "anywhere", "PATCH")[round_ % 3]
            killer = Killer(process, target, nth=1 if target == "POST" else rng.choice((1, 2)))
            kills[await killed_run(server, killer, 5 if target != "anywhere" else rng.uniform(0.5, 3))] += 1
        await clean_run(lambda: run_offline(config, env, quiet=True), health)
    finally:
        await server.close()
        await gateway.close()

    channel_is_true(fake, cad)
    assert kills["POST"] >= 1, kills
    assert master_key.encode() not in (tmp_path / "hosting.sqlite3").read_bytes()
    assert cad.api_key.encode() not in (tmp_path / "hosting.sqlite3").read_bytes()
