"""Slash commands for units: /units (from the board's data: no CAD request; everyone for a server
with a board, dispatchers for an alert-only one; a cooldown each), and on API v2 /status and
/panic (the member's own units, found by the CAD from their Discord id; a configured server only;
/panic gated as /911 is; each member a cooldown and a share of the budget). Also registers the
panic alerts' Acknowledge button."""

from __future__ import annotations

from typing import Literal

from discord import app_commands
from discord.ext import commands

from bot.aliases import NO_PINGS, Interaction, ServerId
from bot.community import Community
from bot.core import DispatchBot
from bot.embeds import CHOICE_NAME_LIMIT
from bot.messages import NotAStatus, ServerNotConfigured, units_not_read, units_not_yet_known
from bot.permissions import NotDispatcher, caller_command, may_dispatch
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

    def _at(self, interaction: Interaction) -> Community:
        return self.bot.communities.for_interaction(interaction)

    def _configured(self, community: Community, server: int | None) -> ServerId:
        """The server of a write: the main one, or one a feed, a board or an alert names; any other
        is refused before it reaches the CAD."""
        server_id = community.server_or_main(server)
        settings = community.settings
        if server_id != settings.cad.server_id and server_id not in settings.event_server_ids:
            raise ServerNotConfigured(server_id)
        return server_id

    @app_commands.command(name="units", description="Show the units on duty (only to you)")
    @app_commands.describe(server="CAD server ID (default: the community's main server)")
    @app_commands.guild_only()
    async def units(self, interaction: Interaction, server: app_commands.Range[int, 1, 10_000] | None = None) -> None:
        community = self._at(interaction)
        server_id = community.server_or_main(server)
        units = community.units
        roster = units.rosters.get(server_id) if units is not None else None
        if roster is None:
            await interaction.response.send_message(
                units_not_read(server_id), ephemeral=True, allowed_mentions=NO_PINGS
            )
            return
        settings = community.settings
        boarded = any(board.server_id == server_id for board in settings.boards)
        if not boarded and not await may_dispatch(interaction):  # an alert-only server's units: dispatchers'
            raise NotDispatcher()
        if not roster.complete and not roster.units:
            await interaction.response.send_message(units_not_yet_known(), ephemeral=True, allowed_mentions=NO_PINGS)
            return
        community.units_cooldown.use(interaction.user.id)  # only a board drawn costs a wait
        pages = board_pages(server_id, roster.units, roster.calls, settings.units.label, confirmed=roster.complete)
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
        community = self._at(interaction)
        labels = community.settings.units.status_labels
        if status not in labels:  # a value the bot never offered (a crafted interaction)
            raise NotAStatus()
        server_id, desk = self._configured(community, server), community.desk
        desk.check_unit_write(interaction, "status", labels.index(status))
        await answer_after_defer(
            interaction, desk.set_status(interaction, "/status", server_id, labels.index(status), status)
        )

    @status.autocomplete("status")
    async def status_choices(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        needle = current.strip().casefold()
        labels = self._at(interaction).settings.units.status_labels
        return [app_commands.Choice(name=label, value=label) for label in labels if needle in label.casefold()][:25]

    @app_commands.command(name="panic", description="Turn the panic of your units on duty on (asks first) or off")
    @app_commands.describe(state="on (default) or off", server="CAD server ID")
    @caller_command()  # as /911: a role that blocks a 911 call blocks a panic, which pings dispatch too
    async def panic(
        self,
        interaction: Interaction,
        state: Literal["on", "off"] = "on",
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        community = self._at(interaction)
        desk, server_id = community.desk, self._configured(community, server)
        desk.check_unit_write(interaction, "panic", state == "on")
        if state == "on":
            await desk.confirm_panic(interaction, "/panic on", server_id)
            return
        await answer_after_defer(interaction, desk.set_panic(interaction, "/panic off", server_id, False))


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Units(bot))
    if bot.api_version != 2:
        for name in V2_ONLY:
            bot.tree.remove_command(name)
