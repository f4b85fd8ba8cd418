"""Permission checks the bot enforces itself.

`default_permissions` and `guild_only` only decide what Discord *shows*; a crafted interaction
still reaches the bot, so every command also runs one of these checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands

if TYPE_CHECKING:
    from .core import DispatchBot

T = TypeVar("T")


class NotDispatcher(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("Only dispatchers can do that (a dispatcher role, or Manage Server).")


class NotAllowedToCall(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("Your roles do not allow filing 911 calls here. Ask an admin if that is wrong.")


def member_role_ids(member: discord.Member) -> set[int]:
    # The interaction payload lists the member's role ids; `member.roles` would drop any role the
    # guild cache has not seen (no GUILD_CREATE yet), so read the ids the payload carried.
    return set(member._roles)


def is_dispatcher(interaction: discord.Interaction[Any], dispatcher_role_ids: list[int]) -> bool:
    member = interaction.user
    if not isinstance(member, discord.Member):
        return False
    if interaction.permissions.manage_guild or interaction.permissions.administrator:
        return True
    return bool(member_role_ids(member) & set(dispatcher_role_ids))


def may_call_911(interaction: discord.Interaction[Any], caller_role_ids: list[int]) -> bool:
    member = interaction.user
    if not isinstance(member, discord.Member):
        return False
    if not caller_role_ids or is_dispatcher(interaction, []):
        return True
    return bool(member_role_ids(member) & set(caller_role_ids))


def _bot(interaction: discord.Interaction[Any]) -> DispatchBot:
    return interaction.client  # type: ignore[no-any-return]


def _guild_check(
    allowed: Callable[[discord.Interaction[Any], DispatchBot], bool], refusal: type[app_commands.CheckFailure]
) -> Callable[[T], T]:
    def predicate(interaction: discord.Interaction[Any]) -> bool:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if not allowed(interaction, _bot(interaction)):
            raise refusal()
        return True

    return app_commands.check(predicate)


def dispatcher_only() -> Callable[[T], T]:
    return _guild_check(lambda i, bot: is_dispatcher(i, bot.settings.commands.dispatcher_role_ids), NotDispatcher)


def callers_only() -> Callable[[T], T]:
    return _guild_check(lambda i, bot: may_call_911(i, bot.settings.commands.caller_role_ids), NotAllowedToCall)
