"""Sonoran CAD dispatch bot for Discord."""

from .config import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "create_bot", "load_settings"]


def create_bot(settings: Settings) -> "DispatchBot":
    """The bot, ready for `await bot.login(token)` (which loads the cogs) or `bot.start(token)`."""
    from .core import DispatchBot

    return DispatchBot(settings)


from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from .core import DispatchBot
