"""Sonoran CAD dispatch bot for Discord."""

from .config import ConfigError, Settings, load_settings
from .core import DispatchBot

__all__ = ["ConfigError", "DispatchBot", "Settings", "create_bot", "load_settings"]


def create_bot(settings: Settings) -> DispatchBot:
    """The bot, ready for `await bot.login(token)` (which loads the cogs) or `bot.start(token)`."""
    return DispatchBot(settings)
