"""Why a lookup was refused: data only (what a member is told is in `bot/messages.py`)."""

from __future__ import annotations

from discord import app_commands


class LookupRefused(app_commands.CheckFailure):
    """Base class: a lookup refused before anything was sent to the CAD."""


class LookupsOff(LookupRefused):
    """`lookups.enabled` is false."""


class NotAllowedToLookUp(LookupRefused):
    """No role of `lookups.role_ids`, and no CAD rights that allow it (or those are not asked)."""


class ChannelNotAllowed(LookupRefused):
    """`lookups.channel_ids` is set and does not hold this channel."""


class BadLookup(LookupRefused):
    """The input cannot be sent: blank, too long, or characters a name or plate does not have."""

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem  # our own words about the input, never the input itself


class LookupLimited(LookupRefused):
    """The member's cooldown or hourly cap (`why` says which), or the community's pause after
    repeated 400s (`why` = "paused"): try again in `retry_after` seconds."""

    def __init__(self, why: str, retry_after: float) -> None:
        super().__init__()
        self.why = why
        self.retry_after = max(0.0, retry_after)
