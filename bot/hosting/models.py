"""What hosted mode stores of a community and of each Discord guild linked to it, as plain values.

A *tenant* is one Sonoran community set up with /setup (its CAD credentials, its push token, its
cooldowns); several guilds may link the same tenant (department servers), each with its own
channels and roles (`GuildConfig`). Channels and roles are Discord snowflakes, taken from Discord's
own options, never typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..config import AlertSettings, BoardSettings, FeedSettings


class GuildConfig(BaseModel):
    """One guild's part of its community: where calls, alerts, boards and audit records go, and
    which of its roles dispatch and file calls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feeds: list[FeedSettings] = Field(default_factory=list)
    alerts: list[AlertSettings] = Field(default_factory=list)
    boards: list[BoardSettings] = Field(default_factory=list)
    audit_channel_id: int = Field(0, ge=0)
    dispatcher_role_ids: list[int] = Field(default_factory=list)
    caller_role_ids: list[int] = Field(default_factory=list)


class CommunityOptions(BaseModel):
    """The community's own numbers, the same for every guild linked to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cooldown_911_seconds: float = Field(60, ge=0, le=3600)
    units_cooldown_seconds: float = Field(10, ge=0, le=3600)
    member_cooldown_seconds: float = Field(10, ge=0, le=3600)


@dataclass(frozen=True)
class Tenant:
    """One Sonoran community set up in hosted mode, its secrets decrypted (and kept as SecretStr,
    so that no repr, log line or traceback shows them)."""

    id: str  # the bot's own id of it (random, url-safe); never the Sonoran community id
    community_id: str
    api_url: str
    api_key: SecretStr
    fingerprint: str  # a keyed hash of the API key: to show it, and to find it set up twice
    push_token: SecretStr  # the last part of its push URL
    options: CommunityOptions = field(default_factory=CommunityOptions)
    created_at: float = 0.0


@dataclass(frozen=True)
class LinkedGuild:
    guild_id: int
    tenant_id: str
    config: GuildConfig = field(default_factory=GuildConfig)


@dataclass(frozen=True)
class Change:
    """One /setup change, as audited: who, what, when (never a key)."""

    guild_id: int
    member_id: int
    member_name: str
    what: str
    at: float
