"""/lookup name and /lookup plate: the CAD's records, only to the member who asked (bot/lookups/)."""

from __future__ import annotations

from discord import app_commands
from discord.ext import commands

from bot.aliases import Interaction
from bot.core import DispatchBot
from bot.embeds import plain
from bot.lookups.query import NAME_LIMIT, PLATE_LIMIT, name_query, plate_query
from bot.lookups.service import Lookups


def _asked(*parts: str | None) -> str:
    """What the member typed, for the audit log of a refused lookup (one line; escaped there)."""
    return plain(" ".join(p for p in parts if p), 120)


class LookupCommands(commands.Cog):
    """Name and plate lookups in the CAD's records."""

    lookup = app_commands.Group(
        name="lookup",
        description="Look up CAD records by name or plate (only you see the answer)",
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),
    )

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot

    def _lookups(self, interaction: Interaction) -> Lookups:
        return self.bot.communities.for_interaction(interaction).lookups

    @lookup.command(name="name", description="Look up a person's records by name")
    @app_commands.describe(
        first="First name",
        last="Last name",
        middle_initial="Middle initial (optional)",
        partial="Also match names that start like this (default: whole names only)",
    )
    async def by_name(
        self,
        interaction: Interaction,
        first: app_commands.Range[str, 1, NAME_LIMIT],
        last: app_commands.Range[str, 1, NAME_LIMIT],
        middle_initial: app_commands.Range[str, 1, 1] | None = None,
        partial: bool = False,
    ) -> None:
        lookups = self._lookups(interaction)
        types = lookups.settings.types
        await lookups.look_up(
            interaction,
            _asked("name", first, middle_initial, last),
            lambda: name_query(first, last, middle_initial, types=types, partial=partial),
        )

    @lookup.command(name="plate", description="Look up a vehicle's records by plate")
    @app_commands.describe(plate="The plate", partial="Also match plates that start like this")
    async def by_plate(
        self, interaction: Interaction, plate: app_commands.Range[str, 1, PLATE_LIMIT], partial: bool = False
    ) -> None:
        lookups = self._lookups(interaction)
        types = lookups.settings.types
        await lookups.look_up(
            interaction, _asked("plate", plate), lambda: plate_query(plate, types=types, partial=partial)
        )


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(LookupCommands(bot))
