"""Names for types used all over the bot, so that signatures say what a value is."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import discord

from .delivery.pings import NO_PINGS
from .sonoran.models import CallId, ServerId

if TYPE_CHECKING:
    from .core import DispatchBot

    Interaction: TypeAlias = discord.Interaction[DispatchBot]
else:  # at run time the parameter is only a hint; this keeps the import cycle away
    Interaction = discord.Interaction

__all__ = ["NO_PINGS", "CallId", "Interaction", "ServerId"]
