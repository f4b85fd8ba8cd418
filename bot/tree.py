"""One place that turns every error into one ephemeral, readable reply (after Red's RedTree)."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from .embeds import clean
from .sonoran import ConfigurationProblem, RequestRejected, SonoranError

log = logging.getLogger(__name__)

DM_REPLY = "Use this in the server: the dispatch commands do not work in direct messages."
GENERIC_REPLY = "Something went wrong on the bot's side. The admins can find the details in the bot's log."


def user_message(error: BaseException) -> str:
    """The sentence a member sees for `error`: what happened and what to do, never a traceback."""
    if isinstance(error, (app_commands.CommandInvokeError, app_commands.TransformerError)) and error.__cause__:
        error = error.__cause__
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, RequestRejected):  # the CAD's words may echo what a player typed
        return f"The CAD refused the request: {clean(error.detail, 300)}"
    if isinstance(error, SonoranError):
        return error.user_message
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: you can file another call in {max(1, round(error.retry_after))} s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return DM_REPLY
    if isinstance(error, app_commands.TransformerError):
        return f"That value is not valid: {clean(error.value, 100)}"
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission (or a dispatcher role) for that."
    if isinstance(error, app_commands.CheckFailure) and str(error):
        return str(error)
    return GENERIC_REPLY


def log_error(error: BaseException, where: str) -> None:
    original = error
    if isinstance(error, app_commands.CommandInvokeError):
        original = error.original
    if isinstance(original, ConfigurationProblem):
        log.warning("%s: %s (an admin has to fix this)", where, original)
    elif isinstance(original, SonoranError):
        log.info("%s: %s", where, original)
    elif isinstance(original, app_commands.CheckFailure):
        log.debug("%s: refused: %s", where, original)
    else:
        log.error("%s failed", where, exc_info=original)


async def reply_ephemeral(interaction: discord.Interaction[Any], message: str) -> None:
    """Answers with `response` if it is still open, else with a followup; never pings."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
        else:
            await interaction.response.send_message(
                message, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
    except discord.HTTPException as exc:  # expired interaction, Discord hiccup: nothing left to tell
        log.warning("could not send an error reply: %s", exc)


async def report_error(interaction: discord.Interaction[Any], error: BaseException, where: str) -> None:
    log_error(error, where)
    await reply_ephemeral(interaction, user_message(error))


class DispatchTree(app_commands.CommandTree[Any]):
    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.guild_id is not None:
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        elif interaction.type is discord.InteractionType.application_command:
            await reply_ephemeral(interaction, DM_REPLY)
        return False

    async def on_error(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError, /) -> None:
        name = interaction.command.qualified_name if interaction.command else "interaction"
        await report_error(interaction, error, f"/{name}")
