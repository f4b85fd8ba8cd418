"""What the feed needs in a Discord channel, and how a fault there is worded: the one table of the
feed's permissions (read by `check`, the invite URL and the fault messages) and the one sentence
per kind of Discord fault, for the feed's writers and the audit log alike."""

from __future__ import annotations

import asyncio

import aiohttp
import discord

# What the feed needs in its channels, with the names Discord's settings show. `check`, the
# invite URL and the feed's own error messages all read this table.
FEED_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
    ("read_message_history", "Read Message History"),
)
FEED_PERMISSION_BITS = discord.Permissions(**{attribute: True for attribute, _ in FEED_PERMISSIONS})


def missing_feed_permissions(granted: discord.Permissions) -> list[str]:
    """The names of the feed's permissions that `granted` lacks."""
    return [label for attribute, label in FEED_PERMISSIONS if not getattr(granted, attribute)]


# what a post or an edit may fail with for a passing reason (the feed and the audit log retry);
# RateLimited: a 429 longer than the client's max_ratelimit_timeout
DISCORD_FAULTS = (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def describe_channel_fault(client: discord.Client, channel_id: int, error: BaseException, action: str) -> str:
    """Why the bot cannot `action` (post, edit) in a channel, naming the permissions it lacks."""
    if isinstance(error, discord.Forbidden):
        return f"cannot {action} there: missing permission {_missing_permissions(client, channel_id)}"
    if isinstance(error, discord.NotFound):
        return f"cannot {action} there: the channel does not exist or the bot cannot see it"
    if isinstance(error, discord.HTTPException):
        return f"cannot {action} there: Discord answered HTTP {error.status} ({error.text[:100]})"
    if isinstance(error, discord.RateLimited):
        return f"cannot {action} there for now: Discord asks to wait {error.retry_after:.0f} s (rate limit)"
    if isinstance(error, TimeoutError):
        return f"cannot {action} there for now: Discord did not answer in time"
    return f"cannot {action} there: {type(error).__name__}"


def _missing_permissions(client: discord.Client, channel_id: int) -> str:
    channel = client.get_channel(channel_id)
    if isinstance(channel, discord.abc.GuildChannel):
        missing = missing_feed_permissions(channel.permissions_for(channel.guild.me))
        if missing:
            return ", ".join(missing)
    return "(one of " + ", ".join(name for _, name in FEED_PERMISSIONS) + ")"
