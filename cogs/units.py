"""Slash commands for units: /units (everyone, from the board's data: no CAD request), and on API
v2 /status and /panic (the member's own units, found by the CAD from their Discord id). Also
registers the panic alerts' Acknowledge button."""

from __future__ import annotations

from typing import Literal

from discord import app_commands
from discord.ext import commands

from bot.aliases import NO_PINGS, Interaction, ServerId
from bot.core import DispatchBot
from bot.embeds import CHOICE_NAME_LIMIT
from bot.messages import NotAStatus, units_not_read, units_not_yet_known
from bot.tree import answer_after_defer
from bot.units.acknowledge import AcknowledgeButton
from bot.units.render import board_pages

V2_ONLY = ("status", "panic")  # v1 cannot target a member by Discord id


class Units(commands.Cog):
    """Who is on duty, and (API v2) the member's own unit status and panic."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(AcknowledgeButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(AcknowledgeButton)

    def _server(self, server: int | None) -> ServerId:
        return server or self.bot.settings.sonoran.server_id

    @app_commands.command(name="units", description="Show the units on duty (only to you)")
    @app_commands.describe(server="CAD server ID (default: the community's main server)")
    @app_commands.guild_only()
    async def units(self, interaction: Interaction, server: app_commands.Range[int, 1, 10_000] | None = None) -> None:
        server_id = self._server(server)
        roster = self.bot.feed.units.rosters.get(server_id) if self.bot.feed else None
        if roster is None:
            await interaction.response.send_message(
                units_not_read(server_id), ephemeral=True, allowed_mentions=NO_PINGS
            )
            return
        if not roster.complete and not roster.units:
            await interaction.response.send_message(units_not_yet_known(), ephemeral=True, allowed_mentions=NO_PINGS)
            return
        pages = board_pages(server_id, roster.units, roster.calls, self.bot.settings.units.label)
        await interaction.response.send_message(embed=pages[0], ephemeral=True, allowed_mentions=NO_PINGS)
        for page in pages[1:]:
            await interaction.followup.send(embed=page, ephemeral=True, allowed_mentions=NO_PINGS)

    @app_commands.command(name="status", description="Set the status of your units on duty in the CAD (API v2)")
    @app_commands.describe(status="Your new status", server="CAD server ID")
    @app_commands.guild_only()
    async def status(
        self,
        interaction: Interaction,
        status: app_commands.Range[str, 1, CHOICE_NAME_LIMIT],
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        labels = self.bot.settings.units.status_labels
        if status not in labels:  # a value the bot never offered (a crafted interaction)
            raise NotAStatus()
        server_id = self._server(server)
        await answer_after_defer(
            interaction,
            self.bot.require_desk().set_status(interaction, "/status", server_id, labels.index(status), status),
        )

    @status.autocomplete("status")
    async def status_choices(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        needle = current.strip().casefold()
        labels = self.bot.settings.units.status_labels
        return [app_commands.Choice(name=label, value=label) for label in labels if needle in label.casefold()][:25]

    @app_commands.command(name="panic", description="Turn the panic of your units on duty on (asks first) or off")
    @app_commands.describe(state="on (default) or off", server="CAD server ID")
    @app_commands.guild_only()
    async def panic(
        self,
        interaction: Interaction,
        state: Literal["on", "off"] = "on",
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        desk, server_id = self.bot.require_desk(), self._server(server)
        if state == "on":
            await desk.confirm_panic(interaction, "/panic on", server_id)
            return
        await answer_after_defer(interaction, desk.set_panic(interaction, "/panic off", server_id, False))


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Units(bot))
    if bot.settings.sonoran.api_version != 2:
        for name in V2_ONLY:
            bot.tree.remove_command(name)
