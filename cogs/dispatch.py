"""Slash commands: /911, /calls, /note, /close, /remove911, and (API v2) /attach, /detach."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.aliases import NO_PINGS, CallId, Interaction, ServerId
from bot.audit import DONE, FAILED, UNKNOWN, AuditRecord, Outcome
from bot.callboard import CallBoard
from bot.cards import CardButton, CardPicker, dispatcher_refusal
from bot.core import DispatchBot
from bot.embeds import KIND_TITLES, call_label, call_list_pages, calls_for_kind, clean, from_unix, plain
from bot.messages import NOTE_LIMIT, TooManyOpenCalls, text_problem, user_message
from bot.permissions import caller_command, dispatcher_command
from bot.sonoran import CallList, DispatchCall, EmergencyCall, OutcomeUnknown, SonoranError
from bot.views import ConfirmView, Paginator, Recheck, StaticPages

# "911" is every 911 call; "emergency" and "civil" are the two kinds of them (as in the feed's `calls`)
CallKindChoice = Literal["all", "911", "emergency", "civil", "dispatch", "closed"]
CLOSED_PAGE_SIZE = 10
LOCATION_LIMIT = 200  # characters, as the /911 options declare them
DESCRIPTION_LIMIT = 1000
CALLER_LIMIT = 100
AUTOCOMPLETE_LIMIT = 25


class Cooldowns:
    """Per-member wait between filed 911 calls. Only a filed (or possibly filed) call counts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until: dict[int, float] = {}

    def check(self, user_id: int) -> None:
        remaining = self._until.get(user_id, 0.0) - time.monotonic()
        if remaining > 0:
            raise app_commands.CommandOnCooldown(app_commands.Cooldown(1, self.seconds), remaining)

    def start(self, user_id: int) -> None:
        now = time.monotonic()
        if len(self._until) > 10_000:  # keep the map from growing on a big server
            self._until = {uid: until for uid, until in self._until.items() if until > now}
        self._until[user_id] = now + self.seconds

    def clear(self, user_id: int) -> None:
        self._until.pop(user_id, None)


class ClosedCallPages:
    """Closed calls, one CAD page per embed page: the first from the shared snapshot, later ones
    fetched with closedLimit/closedOffset when a member presses Next."""

    def __init__(self, bot: DispatchBot, server_id: ServerId, first: CallList, as_of: dt.datetime) -> None:
        self.bot = bot
        self.server_id = server_id
        self.total = first.closed_total
        self.pages: dict[int, list[DispatchCall]] = {0: first.closed[:CLOSED_PAGE_SIZE]}
        self.as_of = as_of

    def _count(self) -> int | None:
        return None if self.total is None else max(1, -(-self.total // CLOSED_PAGE_SIZE))

    def has_page(self, index: int) -> bool:
        if index < 0:
            return False
        count = self._count()
        if count is not None:
            return index < count
        # v1 does not say how many there are: another page may exist while this one was full
        return index in self.pages or len(self.pages.get(index - 1, [])) == CLOSED_PAGE_SIZE

    def page_label(self, index: int) -> str:
        count = self._count()
        return f"{index + 1}/{count}" if count is not None else f"{index + 1}"

    async def page(self, index: int) -> discord.Embed:
        if index not in self.pages:
            self.pages[index] = await self.bot.board.closed_page(
                self.server_id, offset=index * CLOSED_PAGE_SIZE, limit=CLOSED_PAGE_SIZE
            )
            self.as_of = discord.utils.utcnow()
        # at most CLOSED_PAGE_SIZE calls: always exactly one embed
        embed = call_list_pages(
            self.pages[index],
            title=KIND_TITLES["closed"],
            server_id=self.server_id,
            as_of=self.as_of,
            per_page=CLOSED_PAGE_SIZE,
        )[0]
        embed.set_footer(text=f"Page {self.page_label(index)}")
        return embed


async def _answer(interaction: Interaction, write: Awaitable[str]) -> None:
    """Defers (the CAD may take a few seconds; Discord wants an answer in 3), then says what `write`
    returns, only to the member."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    text = await write
    await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)


def _units(ident_ids: list[int]) -> str:
    if not ident_ids:
        return "your units"
    return ("unit " if len(ident_ids) == 1 else "units ") + ", ".join(f"#{i}" for i in ident_ids)


def _display_name(interaction: Interaction) -> str:
    return interaction.user.display_name


class OpenCalls:
    """How many of a member's own 911 calls are still in the CAD's 911 queue, from the call list
    the bot already has (the metaData it writes names the member) plus the calls it filed since
    that list was fetched. Never a CAD request."""

    def __init__(self, board: CallBoard) -> None:
        self.board = board
        self._filed: dict[int, list[tuple[ServerId, CallId, float]]] = {}

    def count(self, user_id: int, server_id: ServerId) -> int:
        snapshot = self.board.latest(server_id)
        listed = snapshot.calls.calls_911 if snapshot else []
        mine = {c.call_id for c in listed if str(c.metadata.get("discordUserId", "")) == str(user_id)}
        since = snapshot.fetched_at if snapshot else float("-inf")
        recent = self._filed.get(user_id, [])
        self._filed[user_id] = [f for f in recent if f[2] >= since]  # older ones are in the list, or gone
        later = {call_id for server, call_id, at in self._filed[user_id] if server == server_id and at >= since}
        return len(mine | later)

    def filed(self, user_id: int, server_id: ServerId, call_id: CallId) -> None:
        if len(self._filed) > 10_000:  # keep the map from growing on a big server
            self._filed.clear()
        self._filed.setdefault(user_id, []).append((server_id, call_id, time.monotonic()))


class Dispatch(commands.Cog):
    """The dispatch desk: file, list, annotate, close and remove CAD calls."""

    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot
        self.cooldowns = Cooldowns(bot.settings.commands.cooldown_911_seconds)
        self.open_calls = OpenCalls(bot.board)

    async def cog_load(self) -> None:
        # the feed cards' buttons and menus, routed by their custom_id: they work on posts from
        # before a restart, and no view is kept per message
        self.bot.add_dynamic_items(CardButton, CardPicker)
        self.bot.desk = self  # the cards reach the shared writes here, typed

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(CardButton, CardPicker)
        if self.bot.desk is self:
            self.bot.desk = None

    def _server(self, server: int | None) -> ServerId:
        return server or self.bot.settings.sonoran.server_id

    @contextlib.asynccontextmanager
    async def _audited(
        self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId | None = None
    ) -> AsyncIterator[list[CallId | None]]:
        """Records the write in the audit channel: done, failed (and why) or outcome unknown. The
        block may set the call id it learns (`/911`) in the yielded list."""
        call = [call_id]

        def record(outcome: Outcome, reason: str = "") -> None:
            if self.bot.audit is not None:
                self.bot.audit.record(
                    AuditRecord(
                        member_name=_display_name(interaction),
                        member_id=interaction.user.id,
                        action=action,
                        server_id=server_id,
                        outcome=outcome,
                        call_id=call[0],
                        reason=reason,
                    )
                )

        try:
            yield call
        except OutcomeUnknown as error:
            record(UNKNOWN, user_message(error))
            raise
        except SonoranError as error:
            record(FAILED, user_message(error))
            raise
        record(DONE)

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
        for what, text, limit in (
            ("location", location, LOCATION_LIMIT),
            ("description", description, DESCRIPTION_LIMIT),
            ("caller", caller, CALLER_LIMIT),
        ):
            # Discord's client keeps the option bounds; discord.py does not check them on a crafted request
            if text is not None and (problem := text_problem(what, text, limit)):
                raise problem
        self.cooldowns.check(interaction.user.id)
        server_id = self._server(server)
        limit = self.bot.settings.commands.max_open_911_per_user
        if limit and (open_calls := self.open_calls.count(interaction.user.id, server_id)) >= limit:
            raise TooManyOpenCalls(open_calls)
        await interaction.response.defer(ephemeral=True, thinking=True)
        metadata = {
            "discordUserId": str(interaction.user.id),
            "discordUser": interaction.user.name,
            "source": "discord",
        }
        self.cooldowns.start(interaction.user.id)  # before the request: a timeout may still have filed it
        try:
            async with self._audited(interaction, "/911", server_id) as audited:
                call_id = await self.bot.sonoran.file_911(
                    caller=caller or _display_name(interaction),
                    location=location,
                    description=description,
                    emergency=emergency,
                    metadata=metadata,
                    server_id=server_id,
                )
                audited[0] = call_id
        except OutcomeUnknown:
            raise
        except SonoranError:
            self.cooldowns.clear(interaction.user.id)  # known not filed: let them try again
            raise
        self.open_calls.filed(interaction.user.id, server_id, call_id)
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
        server_id = self._server(server)
        await interaction.response.defer(ephemeral=True, thinking=True)
        snapshot = await self.bot.board.get(server_id)
        as_of = from_unix(snapshot.fetched_wall)
        source: StaticPages | ClosedCallPages
        if kind == "closed":
            source = ClosedCallPages(self.bot, server_id, snapshot.calls, as_of)
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
        await _answer(interaction, self.add_note(interaction, "/note", self._server(server), call_id, note))

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
        await self.confirm_close(interaction, "/close", self._server(server), call_id)

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
        await _answer(interaction, self.remove_911(interaction, "/remove911", self._server(server), call_id))

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
        await _answer(interaction, self.attach_me(interaction, "/attach", self._server(server), call_id))

    @app_commands.command(name="detach", description="Detach your units from the call they are on (CAD API v2)")
    @app_commands.describe(server="CAD server ID")
    @app_commands.guild_only()
    async def detach(self, interaction: Interaction, server: app_commands.Range[int, 1, 10_000] | None = None) -> None:
        await _answer(interaction, self.detach_me(interaction, "/detach", self._server(server)))

    # --- the writes, shared by the slash commands and the feed cards -------------------------------
    async def add_note(
        self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId, note: str
    ) -> str:
        if problem := text_problem("note", note, NOTE_LIMIT):  # a crafted request may carry any length
            raise problem
        async with self._audited(interaction, action, server_id, call_id):
            label = plain(_display_name(interaction), 64)
            await self.bot.sonoran.add_note(call_id, note, label=label, server_id=server_id)
        return f"Note added to call #{call_id}."

    async def remove_911(self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId) -> str:
        await self._end(interaction, action, server_id, call_id, is_911=True)
        return f"911 call #{call_id} removed."

    async def close_dispatch(self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId) -> str:
        await self._end(interaction, action, server_id, call_id, is_911=False)
        return f"Call #{call_id} closed."

    async def _end(
        self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId, *, is_911: bool
    ) -> None:
        """Removes a 911 call or closes a dispatch call; remembers who, for the feed card; and drops
        it from the cached list, so that menus stop offering it before the next poll."""
        async with self._audited(interaction, action, server_id, call_id):
            end = self.bot.sonoran.remove_911 if is_911 else self.bot.sonoran.close_call
            await end(call_id, server_id=server_id)
        remember = self.bot.store.record_removal if is_911 else self.bot.store.record_closure
        await remember(server_id, call_id, _display_name(interaction))
        if is_911:
            self.bot.board.forget(server_id, emergency_call_id=call_id)
        else:
            self.bot.board.forget(server_id, dispatch_call_id=call_id)

    async def attach_me(self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId) -> str:
        """Attaches the member's units on duty (by their linked CAD account) to the call."""
        async with self._audited(interaction, action, server_id, call_id):
            units = await self.bot.sonoran.attach_units(call_id, discord_id=interaction.user.id, server_id=server_id)
        return f"Attached to call #{call_id}: {_units(units)}."

    async def detach_me(self, interaction: Interaction, action: str, server_id: ServerId) -> str:
        """Detaches the member's units from whatever call they are on."""
        async with self._audited(interaction, action, server_id):
            units = await self.bot.sonoran.detach_units(discord_id=interaction.user.id, server_id=server_id)
        return f"Detached {_units(units)}."

    async def confirm_close(
        self,
        interaction: Interaction,
        action: str,
        server_id: ServerId,
        call_id: CallId,
        *,
        recheck: Recheck | None = None,
    ) -> None:
        """Asks (ephemerally) before closing: the close runs on Confirm, after `recheck` (by
        default: is the member still a dispatcher)."""
        snapshot = self.bot.board.peek(server_id)
        known = next((c for c in snapshot.calls.active if c.call_id == call_id), None) if snapshot else None
        what = clean(call_label(known), 150) if known else f"#{call_id}"
        await self._confirm(
            interaction,
            f"Close dispatch call {what}?",
            f"Close call #{call_id}",
            lambda: self.close_dispatch(interaction, action, server_id, call_id),
            recheck or self._still_dispatcher(action, server_id, call_id),
        )

    async def confirm_remove(
        self,
        interaction: Interaction,
        action: str,
        server_id: ServerId,
        call_id: CallId,
        *,
        recheck: Recheck | None = None,
    ) -> None:
        """Asks (ephemerally) before removing a 911 call: the removal runs on Confirm, after
        `recheck` (by default: is the member still a dispatcher)."""
        await self._confirm(
            interaction,
            f"Remove 911 call #{call_id} from the CAD?",
            f"Remove call #{call_id}",
            lambda: self.remove_911(interaction, action, server_id, call_id),
            recheck or self._still_dispatcher(action, server_id, call_id),
        )

    @staticmethod
    def _still_dispatcher(action: str, server_id: ServerId, call_id: CallId) -> Recheck:
        async def recheck(confirming: Interaction) -> str | None:
            return await dispatcher_refusal(confirming, action, server_id, call_id)

        return recheck

    async def _confirm(
        self,
        interaction: Interaction,
        question: str,
        label: str,
        write: Callable[[], Awaitable[str]],
        recheck: Recheck,
    ) -> None:
        async def confirmed(_: Interaction) -> str:
            return await write()

        view = ConfirmView(interaction.user.id, confirmed, confirm_label=label, recheck=recheck)
        await interaction.response.send_message(
            f"{question} This cannot be undone from Discord.", view=view, ephemeral=True, allowed_mentions=NO_PINGS
        )
        view.message = await interaction.original_response()

    # --- autocomplete ----------------------------------------------------------------------------
    def _choices(
        self, interaction: Interaction, current: str, pick: type[EmergencyCall] | type[DispatchCall]
    ) -> list[app_commands.Choice[int]]:
        server = getattr(interaction.namespace, "server", None)
        snapshot = self.bot.board.peek(self._server(server if isinstance(server, int) else None))
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
    if bot.settings.sonoran.api_version != 2:  # v1 cannot target a member by Discord id
        for name in ("attach", "detach"):
            bot.tree.remove_command(name)
