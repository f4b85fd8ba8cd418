"""The Feed cog: the stable `poll_once()` surface over the feed engine (`bot.feed`), which the bot
builds and starts in `setup_hook` and stops in `close()`; the cog starts nothing. What the feed does
is told in `bot/feed/engine.py`."""

from __future__ import annotations

from discord.ext import commands

from bot.core import DispatchBot


class Feed(commands.Cog):
    """Posts new CAD calls to the configured channels and keeps those posts up to date."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot

    async def poll_once(self) -> float:
        """Exactly one poll-and-post cycle over every configured feed (the design's stable surface:
        `await bot.get_cog("Feed").poll_once()`); the seconds until the next one."""
        if self.bot.feed is None:
            raise RuntimeError("this bot serves no feed (built with serve=False, or not set up yet)")
        return await self.bot.feed.poll_once()


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Feed(bot))
