"""Sharding: with `discord.shard_count` set, the bot runs discord.py's AutoShardedBot over the
shards `discord.shard_ids` (all of them when unset), one gateway connection each, so that the
guilds of a hosted deployment can be spread over processes. `new_bot` picks the class."""

from __future__ import annotations

from typing import Any

from discord.ext import commands

from .config import Settings
from .core import DispatchBot
from .services import Services


class ShardedDispatchBot(DispatchBot, commands.AutoShardedBot):
    """A `DispatchBot` on the shards of `settings.discord`. discord.py fires `on_ready` once
    every shard of this process is ready, and `change_presence` and `latency` cover them all."""

    def __init__(self, settings: Settings, services: Services | None = None, **options: Any) -> None:
        shards = settings.discord
        if shards.shard_count is None:
            raise ValueError("ShardedDispatchBot needs discord.shard_count")
        super().__init__(settings, services, shard_ids=shards.shard_list(), shard_count=shards.shard_count, **options)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} shards={self.settings.discord.shard_list()}/{self.shard_count}>"


def new_bot(settings: Settings, services: Services | None = None, **options: Any) -> DispatchBot:
    """The bot `settings` ask for: sharded when discord.shard_count is set, else one connection."""
    if settings.discord.sharded:
        return ShardedDispatchBot(settings, services, **options)
    return DispatchBot(settings, services, **options)
