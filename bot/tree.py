"""One place that turns every error into one ephemeral, readable reply (after Red's RedTree);
the words come from `bot.messages`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import discord
from discord import app_commands

from .aliases import NO_PINGS, Interaction
from .audit import audit_refusal
from .community import community_of
from .messages import user_message
from .sonoran import ConfigurationProblem, SonoranError

log = logging.getLogger(__name__)


def log_error(error: BaseException, where: str) -> None:
    original = error
    if isinstance(error, app_commands.CommandInvokeError):
        original = error.original
    if isinstance(original, ConfigurationProblem):
        log.warning("%s: %s (an admin has to fix this)", where, original)
    elif isinstance(original, SonoranError):
        log.info("%s: %s", where, original)
    elif isinstance(original, (app_commands.CheckFailure, app_commands.TransformerError)):
        # a refusal, or an option value Discord resolved to nothing the bot can use: no bug of ours
        log.debug("%s: refused: %s", where, original)
    else:
        log.error("%s failed", where, exc_info=original)


async def reply_ephemeral(interaction: Interaction, message: str) -> None:
    """Answers with `response` if it is still open, else with a followup; never pings."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException as exc:  # expired interaction, Discord hiccup: nothing left to tell
        log.warning("could not send an error reply: %s", exc)


async def answer_after_defer(interaction: Interaction, write: Awaitable[str]) -> None:
    """Defers (the CAD may take a few seconds; Discord wants an answer in 3), then says what `write`
    returns, only to the member."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    text = await write
    await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)


async def report_error(interaction: Interaction, error: BaseException, where: str) -> None:
    log_error(error, where)
    await reply_ephemeral(interaction, user_message(error))


class DispatchTree(app_commands.CommandTree[Any]):
    async def interaction_check(self, interaction: Interaction, /) -> bool:
        if interaction.guild_id is not None:
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        elif interaction.type is discord.InteractionType.application_command:
            await reply_ephemeral(interaction, user_message(app_commands.NoPrivateMessage()))
        return False

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError, /) -> None:
        name = interaction.command.qualified_name if interaction.command else "interaction"
        community = community_of(interaction)
        if (
            community is not None
            and name in AUDITED_COMMANDS
            and isinstance(error, (app_commands.CheckFailure, app_commands.CommandOnCooldown))
        ):
            server = getattr(interaction.namespace, "server", None)
            call_id = getattr(interaction.namespace, "call_id", None)
            audit_refusal(
                interaction,
                f"/{name}",
                server if isinstance(server, int) else community.main_server,
                call_id if isinstance(call_id, int) else None,
                user_message(error),
            )
        await report_error(interaction, error, f"/{name}")


AUDITED_COMMANDS = frozenset(
    {"911", "note", "close", "remove911", "attach", "detach", "status", "panic"}
)  # the commands that write to the CAD
