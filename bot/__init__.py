"""Sonoran CAD dispatch bot for Discord.

`from bot import load_settings, create_bot` is the stable entry point. The names are resolved on
first use, so that `import bot.sonoran` (the CAD client) or `python -m bot` does not pull in
discord.py before it is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ConfigError, Settings, load_settings
    from .core import DispatchBot

__all__ = ["ConfigError", "DispatchBot", "Settings", "create_bot", "load_settings"]


def create_bot(settings: Settings) -> DispatchBot:
    """The bot, ready for `await bot.login(token)` (which loads the cogs) or `bot.start(token)`:
    on the shards discord.shard_ids of discord.shard_count when those are set."""
    from .shards import new_bot

    return new_bot(settings)


def __getattr__(name: str) -> Any:
    if name in ("ConfigError", "Settings", "load_settings"):
        from . import config

        return getattr(config, name)
    if name == "DispatchBot":
        from .core import DispatchBot

        return DispatchBot
    raise AttributeError(f"module 'bot' has no attribute {name!r}")
