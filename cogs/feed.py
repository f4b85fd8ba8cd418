"""The Feed cog: the stable `poll_once()` surface over the feed engines of every community
(`bot.communities`), which the bot builds (`bot.app`) and starts in `setup_hook` and stops in
`close()`; the cog starts nothing. What the feed does is told in `bot/feed/engine.py`."""

from __future__ import annotations

from discord.ext import commands

from bot.core import DispatchBot


class Feed(commands.Cog):
    """Posts new CAD calls to the configured channels and keeps those posts up to date."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot

    async def poll_once(self) -> float:
        """Exactly one poll-and-post cycle over every feed of every community (the design's stable
        surface: `await bot.get_cog("Feed").poll_once()`); the seconds until the next one (the
        soonest any community's engine wants)."""
        engines = [community.feed for community in self.bot.communities if community.feed is not None]
        if not engines:
            raise RuntimeError("this bot serves no feed (built with serve=False, or not set up yet)")
        return min([await engine.poll_once() for engine in engines])


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Feed(bot))
