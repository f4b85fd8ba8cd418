"""The Feed cog: starts the feed engine (`bot.feed`) when the extension loads and stops it when it
unloads. What the feed does is told in `bot/feed/engine.py`."""

from __future__ import annotations

from discord.ext import commands

from bot.core import DispatchBot
from bot.feed import FeedEngine


class Feed(commands.Cog):
    """Posts new CAD calls to the configured channels and keeps those posts up to date."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot
        self.engine = FeedEngine(bot)

    async def cog_load(self) -> None:
        self.bot.feed = self.engine
        await self.engine.start(poll=self.bot.autostart_feed)

    async def poll_once(self) -> float:
        """Exactly one poll-and-post cycle over every configured feed (the design's stable surface:
        `await bot.get_cog("Feed").poll_once()`); the seconds until the next one."""
        return await self.engine.poll_once()

    async def cog_unload(self) -> None:
        await self.engine.stop()
        if self.bot.feed is self.engine:
            self.bot.feed = None


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Feed(bot))
