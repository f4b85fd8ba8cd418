"""The desk: every write a member can make (file a 911 call, note, close, remove, attach, detach,
set their unit's status or panic),
with its checks, its cooldown and abuse limits, and its one audit record. The slash commands
(`cogs/dispatch.py`) and the feed cards (`bot/cards.py`) call the desk of the interaction's community
(`bot.communities.for_interaction(interaction).desk`) with types;
they only declare and reply."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..aliases import NO_PINGS, CallId, Interaction, ServerId
from ..audit import DONE, FAILED, UNKNOWN, Outcome, audit
from ..cards import dispatcher_refusal
from ..embeds import call_label, clean, plain
from ..messages import (
    NOTE_LIMIT,
    NotAStatus,
    TooManyOpenCalls,
    panic_question,
    panic_set,
    panic_unchanged,
    status_set,
    status_unchanged,
    text_problem,
    user_message,
)
from ..sonoran import OutcomeUnknown, RateLimited, SonoranError
from ..views import ConfirmView, Recheck
from .limits import Cooldowns, MemberShare, OpenCalls

if TYPE_CHECKING:
    from ..community import Community

LOCATION_LIMIT = 200  # characters, as the /911 options declare them
DESCRIPTION_LIMIT = 1000
CALLER_LIMIT = 100


def _units(ident_ids: list[int]) -> str:
    if not ident_ids:
        return "your units"
    return ("unit " if len(ident_ids) == 1 else "units ") + ", ".join(f"#{i}" for i in ident_ids)


async def _cad_decides(_: Interaction) -> str | None:
    """No check of the bot's own on Confirm: the CAD decides whose units these are."""
    return None


def _display_name(interaction: Interaction) -> str:
    return interaction.user.display_name


class Desk:
    def __init__(self, community: Community) -> None:
        self.community = community
        self.cooldowns = Cooldowns(community.settings.commands.cooldown_911_seconds)
        self.open_calls = OpenCalls(community.board)
        units, budget = community.settings.units, community.settings.cad.rate_limits
        self.unit_writes = {  # each member's part of the /status and /panic budgets
            "status": MemberShare.of(budget.unit_status, units.member_share, units.member_cooldown_seconds),
            "panic": MemberShare.of(budget.unit_panic, units.member_share, units.member_cooldown_seconds),
        }

    def __repr__(self) -> str:
        return f"Desk(cad=v{self.community.settings.cad.api_version})"

    async def file_911(
        self,
        interaction: Interaction,
        *,
        location: str,
        description: str,
        emergency: bool,
        caller: str | None,
        server_id: ServerId,
    ) -> CallId:
        """Files a 911 call for the member after its checks (bounds, cooldown, open calls), having
        deferred the answer (the CAD may take a few seconds); the new call's id."""
        for what, text, limit in (
            ("location", location, LOCATION_LIMIT),
            ("description", description, DESCRIPTION_LIMIT),
            ("caller", caller, CALLER_LIMIT),
        ):
            # Discord's client keeps the option bounds; discord.py does not check them on a crafted request
            if text is not None and (problem := text_problem(what, text, limit)):
                raise problem
        self.cooldowns.check(interaction.user.id)
        limit = self.community.settings.commands.max_open_911_per_user
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
                call_id = await self.community.sonoran.file_911(
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
        return call_id

    @contextlib.asynccontextmanager
    async def _audited(
        self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId | None = None
    ) -> AsyncIterator[list[CallId | None]]:
        """Records the write in the audit channel: done, failed (and why) or outcome unknown. The
        block may set the call id it learns (`/911`) in the yielded list."""
        call = [call_id]

        def record(outcome: Outcome, reason: str = "") -> None:
            audit(interaction, action, server_id, call[0], outcome, reason)

        try:
            yield call
        except OutcomeUnknown as error:
            record(UNKNOWN, user_message(error))
            raise
        except SonoranError as error:
            record(FAILED, user_message(error))
            raise
        record(DONE)

    # --- the writes, shared by the slash commands and the feed cards -------------------------------
    async def add_note(
        self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId, note: str
    ) -> str:
        if problem := text_problem("note", note, NOTE_LIMIT):  # a crafted request may carry any length
            raise problem
        async with self._audited(interaction, action, server_id, call_id):
            label = plain(_display_name(interaction), 64)
            await self.community.sonoran.add_note(call_id, note, label=label, server_id=server_id)
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
            end = self.community.sonoran.remove_911 if is_911 else self.community.sonoran.close_call
            await end(call_id, server_id=server_id)
        remember = self.community.store.record_removal if is_911 else self.community.store.record_closure
        await remember(server_id, call_id, _display_name(interaction))
        if is_911:
            self.community.board.forget(server_id, emergency_call_id=call_id)
        else:
            self.community.board.forget(server_id, dispatch_call_id=call_id)

    async def attach_me(self, interaction: Interaction, action: str, server_id: ServerId, call_id: CallId) -> str:
        """Attaches the member's units on duty (by their linked CAD account) to the call."""
        async with self._audited(interaction, action, server_id, call_id):
            units = await self.community.sonoran.attach_units(
                call_id, discord_id=interaction.user.id, server_id=server_id
            )
        return f"Attached to call #{call_id}: {_units(units)}."

    async def detach_me(self, interaction: Interaction, action: str, server_id: ServerId) -> str:
        """Detaches the member's units from whatever call they are on."""
        async with self._audited(interaction, action, server_id):
            units = await self.community.sonoran.detach_units(discord_id=interaction.user.id, server_id=server_id)
        return f"Detached {_units(units)}."

    def check_unit_write(self, interaction: Interaction, kind: str, value: object) -> None:
        """Refuses (WaitBeforeAgain) a /status or /panic over the member's cooldown or share; spends nothing."""
        self.unit_writes[kind].check(interaction.user.id, value)

    @contextlib.asynccontextmanager
    async def _unit_write(self, interaction: Interaction, kind: str, value: object) -> AsyncIterator[None]:
        """Counts the write against the member's share once it went out to the CAD (whatever the
        CAD answered); the bot's own budget saying "not now" sent nothing and costs nothing."""
        self.check_unit_write(interaction, kind, value)
        share, user_id = self.unit_writes[kind], interaction.user.id
        try:
            yield
        except RateLimited as error:
            if error.status is not None:
                share.spent(user_id, value)
            raise
        except SonoranError:
            share.spent(user_id, value)
            raise
        share.spent(user_id, value)

    async def set_status(
        self, interaction: Interaction, action: str, server_id: ServerId, status: int, label: str
    ) -> str:
        """Sets the status of the member's units on duty (the CAD finds them by Discord id, v2).
        Only a value Sonoran accepts is sent (0-4, or one the community labelled)."""
        if status not in self.community.settings.units.status_values:
            raise NotAStatus()
        async with self._unit_write(interaction, "status", status), self._audited(interaction, action, server_id):
            updated = await self.community.sonoran.set_unit_status(
                status, discord_id=interaction.user.id, server_id=server_id
            )
        if updated == 0:  # Sonoran's `updated`: nothing changed
            return status_unchanged(label)
        self._units_changed()
        return status_set(label)

    async def set_panic(self, interaction: Interaction, action: str, server_id: ServerId, panic: bool) -> str:
        """Turns the panic of the member's units on duty on or off (v2). Sonoran sends no event for
        it: the units list is read again as soon as its budget allows, for the alert."""
        async with self._unit_write(interaction, "panic", panic), self._audited(interaction, action, server_id):
            updated = await self.community.sonoran.set_unit_panic(
                panic, discord_id=interaction.user.id, server_id=server_id
            )
        if updated == 0:
            return panic_unchanged(panic)
        self._units_changed()
        return panic_set(panic)

    def _units_changed(self) -> None:
        if (units := self.community.units) is not None:
            units.poll_soon()

    async def confirm_panic(self, interaction: Interaction, action: str, server_id: ServerId) -> None:
        """Asks (ephemerally) before turning a panic on: a mistaken one pings dispatch."""
        view = ConfirmView(
            interaction.user.id,
            lambda confirming: self.set_panic(confirming, action, server_id, True),
            confirm_label="Panic",
            recheck=_cad_decides,
        )
        await interaction.response.send_message(panic_question(), view=view, ephemeral=True, allowed_mentions=NO_PINGS)
        view.message = await interaction.original_response()

    async def confirm_end(
        self,
        interaction: Interaction,
        action: str,
        server_id: ServerId,
        call_id: CallId,
        *,
        is_911: bool,
        recheck: Recheck | None = None,
    ) -> None:
        """Asks (ephemerally) before removing a 911 call or closing a dispatch call: the write runs
        on Confirm, after `recheck` (by default: is the member still a dispatcher)."""
        if is_911:
            question, label = f"Remove 911 call #{call_id} from the CAD?", f"Remove call #{call_id}"
        else:
            snapshot = self.community.board.peek(server_id)
            known = next((c for c in snapshot.calls.active if c.call_id == call_id), None) if snapshot else None
            what = clean(call_label(known), 150) if known else f"#{call_id}"
            question, label = f"Close dispatch call {what}?", f"Close call #{call_id}"
        write = self.remove_911 if is_911 else self.close_dispatch
        view = ConfirmView(
            interaction.user.id,
            lambda _: write(interaction, action, server_id, call_id),
            confirm_label=label,
            recheck=recheck or self._still_dispatcher(action, server_id, call_id),
        )
        await interaction.response.send_message(
            f"{question} This cannot be undone from Discord.", view=view, ephemeral=True, allowed_mentions=NO_PINGS
        )
        view.message = await interaction.original_response()

    @staticmethod
    def _still_dispatcher(action: str, server_id: ServerId, call_id: CallId) -> Recheck:
        async def recheck(confirming: Interaction) -> str | None:
            return await dispatcher_refusal(confirming, action, server_id, call_id)

        return recheck
