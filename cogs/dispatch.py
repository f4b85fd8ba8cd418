"""Slash commands: /911, /calls, /note, /close, /remove911, and (API v2) /attach, /detach."""

from __future__ import annotations

from typing import Literal

from discord import app_commands
from discord.ext import commands

from bot.aliases import NO_PINGS, CallId, Interaction, ServerId
from bot.cards import CardButton, CardPicker
from bot.closedcalls import ClosedCallPages
from bot.community import Community
from bot.core import DispatchBot
from bot.desk import Desk
from bot.desk.desk import CALLER_LIMIT, DESCRIPTION_LIMIT, LOCATION_LIMIT
from bot.embeds import KIND_TITLES, call_label, call_list_pages, calls_for_kind, clean, from_unix
from bot.messages import NOTE_LIMIT
from bot.permissions import caller_command, dispatcher_command
from bot.sonoran import DispatchCall, EmergencyCall
from bot.tree import answer_after_defer
from bot.views import Paginator, StaticPages

# "911" is every 911 call; "emergency" and "civil" are the two kinds of them (as in the feed's `calls`)
CallKindChoice = Literal["all", "911", "emergency", "civil", "dispatch", "closed"]
AUTOCOMPLETE_LIMIT = 25


class Dispatch(commands.Cog):
    """The dispatch desk: file, list, annotate, close and remove CAD calls."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        # the feed cards' buttons and menus, routed by their custom_id: they work on posts from
        # before a restart, and no view is kept per message
        self.bot.add_dynamic_items(CardButton, CardPicker)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(CardButton, CardPicker)

    def _at(self, interaction: Interaction) -> Community:
        return self.bot.communities.for_interaction(interaction)

    def _desk(self, interaction: Interaction) -> Desk:
        return self._at(interaction).desk

    def _server(self, interaction: Interaction, server: int | None) -> ServerId:
        return self._at(interaction).server_or_main(server)

    # --- /911 ------------------------------------------------------------------------------------
    @app_commands.command(name="911", description="File an emergency (or civil) 911 call into the CAD")
    @app_commands.describe(
        location="Where it is happening (street, postal, landmark)",
        description="What is happening",
        emergency="Emergency (true) or civil/non-emergency (false)",
        caller="Caller name shown to dispatch (default: your server name)",
        server="CAD server ID (default: the community's main server)",
    )
    @caller_command()
    async def file_911(
        self,
        interaction: Interaction,
        location: app_commands.Range[str, 1, LOCATION_LIMIT],
        description: app_commands.Range[str, 1, DESCRIPTION_LIMIT],
        emergency: bool = True,
        caller: app_commands.Range[str, 1, CALLER_LIMIT] | None = None,
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        call_id = await self._desk(interaction).file_911(
            interaction,
            location=location,
            description=description,
            emergency=emergency,
            caller=caller,
            server_id=self._server(interaction, server),
        )
        kind = "Emergency" if emergency else "Civil"
        await interaction.followup.send(
            f"{kind} call #{call_id} filed at {clean(location, 200)}. Dispatch has been notified.",
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )

    # --- /calls ----------------------------------------------------------------------------------
    @app_commands.command(name="calls", description="Show the calls in the CAD")
    @app_commands.describe(kind="Which calls to show (default: all active)", server="CAD server ID")
    @app_commands.guild_only()
    async def calls(
        self,
        interaction: Interaction,
        kind: CallKindChoice = "all",
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        community = self._at(interaction)
        server_id = community.server_or_main(server)
        await interaction.response.defer(ephemeral=True, thinking=True)
        snapshot = await community.board.get(server_id)
        as_of = from_unix(snapshot.fetched_wall)
        source: StaticPages | ClosedCallPages
        if kind == "closed":
            source = ClosedCallPages(community, server_id, snapshot.calls, as_of)
        else:
            entries = calls_for_kind(snapshot.calls, kind)
            source = StaticPages(call_list_pages(entries, title=KIND_TITLES[kind], server_id=server_id, as_of=as_of))
        first = await source.page(0)
        if not source.has_page(1):  # one page: no buttons, and no view waiting for its timeout
            await interaction.followup.send(embed=first, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        view = Paginator(source, interaction.user.id)
        view.message = await interaction.followup.send(
            embed=first, view=view, ephemeral=True, allowed_mentions=NO_PINGS, wait=True
        )

    # --- /note -----------------------------------------------------------------------------------
    @app_commands.command(name="note", description="Add a note to a dispatch call")
    @app_commands.describe(
        call_id="The dispatch call", note="The note (signed with your server name)", server="CAD server ID"
    )
    @dispatcher_command()
    async def note(
        self,
        interaction: Interaction,
        call_id: app_commands.Range[CallId, 1],
        note: app_commands.Range[str, 1, NOTE_LIMIT],
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        await answer_after_defer(
            interaction,
            self._desk(interaction).add_note(interaction, "/note", self._server(interaction, server), call_id, note),
        )

    # --- /close ----------------------------------------------------------------------------------
    @app_commands.command(name="close", description="Close a dispatch call (asks for confirmation)")
    @app_commands.describe(call_id="The dispatch call to close", server="CAD server ID")
    @dispatcher_command()
    async def close(
        self,
        interaction: Interaction,
        call_id: app_commands.Range[CallId, 1],
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        await self._desk(interaction).confirm_end(
            interaction, "/close", self._server(interaction, server), call_id, is_911=False
        )

    # --- /remove911 ------------------------------------------------------------------------------
    @app_commands.command(name="remove911", description="Remove a 911 call from the CAD")
    @app_commands.describe(call_id="The 911 call to remove", server="CAD server ID")
    @dispatcher_command()
    async def remove911(
        self,
        interaction: Interaction,
        call_id: app_commands.Range[CallId, 1],
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        await answer_after_defer(
            interaction,
            self._desk(interaction).remove_911(interaction, "/remove911", self._server(interaction, server), call_id),
        )

    # --- /attach, /detach (API v2) ----------------------------------------------------------------
    @app_commands.command(name="attach", description="Attach your units on duty to a dispatch call (CAD API v2)")
    @app_commands.describe(call_id="The dispatch call", server="CAD server ID")
    @app_commands.guild_only()
    async def attach(
        self,
        interaction: Interaction,
        call_id: app_commands.Range[CallId, 1],
        server: app_commands.Range[int, 1, 10_000] | None = None,
    ) -> None:
        await answer_after_defer(
            interaction,
            self._desk(interaction).attach_me(interaction, "/attach", self._server(interaction, server), call_id),
        )

    @app_commands.command(name="detach", description="Detach your units from the call they are on (CAD API v2)")
    @app_commands.describe(server="CAD server ID")
    @app_commands.guild_only()
    async def detach(self, interaction: Interaction, server: app_commands.Range[int, 1, 10_000] | None = None) -> None:
        await answer_after_defer(
            interaction, self._desk(interaction).detach_me(interaction, "/detach", self._server(interaction, server))
        )

    # --- autocomplete ----------------------------------------------------------------------------
    def _choices(
        self, interaction: Interaction, current: str, pick: type[EmergencyCall] | type[DispatchCall]
    ) -> list[app_commands.Choice[int]]:
        server = getattr(interaction.namespace, "server", None)
        community = self._at(interaction)
        snapshot = community.board.peek(community.server_or_main(server if isinstance(server, int) else None))
        if snapshot is None:
            return []
        calls: list[EmergencyCall] | list[DispatchCall] = (
            snapshot.calls.calls_911 if pick is EmergencyCall else snapshot.calls.active
        )
        needle = current.strip().lstrip("#").casefold()
        choices = []
        for call in calls:
            label = call_label(call)
            if needle and needle not in label.casefold():
                continue
            choices.append(app_commands.Choice(name=label, value=call.call_id))
            if len(choices) == AUTOCOMPLETE_LIMIT:
                break
        return choices

    @note.autocomplete("call_id")
    @close.autocomplete("call_id")
    @attach.autocomplete("call_id")
    async def dispatch_call_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        return self._choices(interaction, current, DispatchCall)

    @remove911.autocomplete("call_id")
    async def emergency_call_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        return self._choices(interaction, current, EmergencyCall)


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Dispatch(bot))
    if bot.api_version != 2:  # v1 cannot target a member by Discord id
        for name in ("attach", "detach"):
            bot.tree.remove_command(name)
