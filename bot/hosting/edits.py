"""Pure edits of a guild's setup, as /setup makes them: a channel's feed, alerts or board added
or replaced, or taken away. Each refuses what cannot be, with the sentence the admin is told."""

from __future__ import annotations

from typing import Literal

from ..config import AlertSettings, BoardSettings, FeedSettings
from .errors import SetupProblem
from .models import GuildConfig

Posting = FeedSettings | AlertSettings | BoardSettings
PostingField = Literal["feeds", "alerts", "boards"]
WHAT = {"feeds": "feed", "alerts": "panic alerts", "boards": "unit board"}


def put(config: GuildConfig, field: PostingField, item: Posting) -> GuildConfig:
    """`item` in its channel, in place of what that channel had of the kind."""
    if config.audit_channel_id == item.channel_id:
        raise SetupProblem(
            "That channel is the audit channel: its records would show beside the calls. Choose another."
        )
    kept = [existing for existing in getattr(config, field) if existing.channel_id != item.channel_id]
    return config.model_copy(update={field: [*kept, item]})


def take(config: GuildConfig, field: PostingField, channel_id: int, channel_name: str) -> GuildConfig:
    """The channel's item of the kind, taken away; refused when it has none."""
    current = getattr(config, field)
    kept = [existing for existing in current if existing.channel_id != channel_id]
    if len(kept) == len(current):
        raise SetupProblem(f"#{channel_name} has no {WHAT[field]}: nothing was changed.")
    return config.model_copy(update={field: kept})
