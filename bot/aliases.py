"""Names for types used all over the bot, so that signatures say what a value is."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import discord

from .sonoran.models import CallId, ServerId

if TYPE_CHECKING:
    from .core import DispatchBot

    Interaction: TypeAlias = discord.Interaction[DispatchBot]
else:  # at run time the parameter is only a hint; this keeps the import cycle away
    Interaction = discord.Interaction

# Every message the bot sends pings nobody, unless it names the one role it may ping (a feed's
# EMERGENCY posts): player text can never reach anyone.
NO_PINGS = discord.AllowedMentions.none()


def pinging(role_id: int) -> discord.AllowedMentions:
    """Mentions that ping this one role and nobody else (none at all for 0)."""
    if not role_id:
        return NO_PINGS
    return discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(role_id)])


__all__ = ["NO_PINGS", "CallId", "Interaction", "ServerId", "pinging"]
