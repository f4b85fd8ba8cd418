"""Who a message may ping: nobody, unless it names the one role it may ping (a feed's EMERGENCY
posts, a panic alert): player text can never reach anyone."""

from __future__ import annotations

import discord

NO_PINGS = discord.AllowedMentions.none()


def pinging(role_id: int) -> discord.AllowedMentions:
    """Mentions that ping this one role and nobody else (none at all for 0)."""
    if not role_id:
        return NO_PINGS
    return discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(role_id)])
