"""Who may do what, and the refusals (CheckFailures) that say so.

`default_permissions` and `guild_only` only decide what Discord *shows*; a crafted interaction
still reaches the bot, so each role's decorator applies both and the bot's own check together
(after RoboDanny's `cogs/utils/checks.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import discord
from discord import app_commands

from .aliases import Interaction

T = TypeVar("T")


class NotDispatcher(app_commands.CheckFailure):
    """The member is no dispatcher (no dispatcher role, no Manage Server)."""


class NotAllowedToCall(app_commands.CheckFailure):
    """`commands.caller_role_ids` is set and the member has none of those roles."""


class BlockedFromCalling(app_commands.CheckFailure):
    """The member has one of `commands.blocked_role_ids`."""


class NotYourButtons(app_commands.CheckFailure):
    """A button of a reply meant for another member was pressed."""


def member_role_ids(member: discord.Member) -> set[int]:
    # The interaction payload lists the member's role ids; `member.roles` would drop any role the
    # guild cache has not seen (no GUILD_CREATE yet), so read the ids the payload carried.
    return set(member._roles)


def is_dispatcher(interaction: Interaction, dispatcher_role_ids: list[int]) -> bool:
    member = interaction.user
    if not isinstance(member, discord.Member):
        return False
    if interaction.permissions.manage_guild or interaction.permissions.administrator:
        return True
    return bool(member_role_ids(member) & set(dispatcher_role_ids))


def may_call_911(interaction: Interaction, caller_role_ids: list[int]) -> bool:
    member = interaction.user
    if not isinstance(member, discord.Member):
        return False
    if not caller_role_ids or is_dispatcher(interaction, []):
        return True
    return bool(member_role_ids(member) & set(caller_role_ids))


async def may_dispatch(interaction: Interaction) -> bool:
    """The Discord rules (Manage Server, dispatcher roles), then, when they say no and
    `commands.dispatchers_from_cad` is on, the CAD's word on the member's linked account."""
    community = interaction.client.communities.for_interaction(interaction)
    if is_dispatcher(interaction, community.dispatcher_role_ids(interaction.guild_id)):
        return True
    rights = community.rights
    return (
        rights is not None
        and community.settings.commands.dispatchers_from_cad  # the rights may be read for lookups only
        and isinstance(interaction.user, discord.Member)
        and await rights.may_dispatch(interaction.user.id)
    )


async def _dispatcher_check(interaction: Interaction) -> bool:
    if not await may_dispatch(interaction):
        raise NotDispatcher()
    return True


def _caller_check(interaction: Interaction) -> bool:
    community = interaction.client.communities.for_interaction(interaction)
    rules = community.settings.commands
    member = interaction.user
    if isinstance(member, discord.Member) and member_role_ids(member) & set(rules.blocked_role_ids):
        raise BlockedFromCalling()  # before anything else: a block beats every grant
    if not may_call_911(interaction, community.caller_role_ids(interaction.guild_id)):
        raise NotAllowedToCall()
    return True


def dispatcher_command() -> Callable[[T], T]:
    """For /note, /close, /remove911: in guilds only, shown to Manage Server by default (admins
    can widen that in Server Settings > Integrations), and checked here against the dispatcher
    roles whatever Discord showed."""

    def decorate(command: T) -> T:
        command = app_commands.guild_only()(command)
        command = app_commands.default_permissions(manage_guild=True)(command)
        return app_commands.check(_dispatcher_check)(command)

    return decorate


def caller_command() -> Callable[[T], T]:
    """For /911: in guilds only, and checked against `commands.blocked_role_ids` and (when set)
    `commands.caller_role_ids`."""

    def decorate(command: T) -> T:
        command = app_commands.guild_only()(command)
        return app_commands.check(_caller_check)(command)

    return decorate
