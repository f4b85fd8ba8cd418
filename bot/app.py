"""The composition root: the one place a community's rooms are built and wired together.

`build_community(client, settings, services, serve=...)` takes what is shared by the process (the
Discord client, and the services opened for the community: session, CAD client and budget, call
board, state, CAD-rights reader) and returns a `Community` with its audit log, its desk, its
lookups and, when it serves, its feed and units engines. Nothing is started here:
`await community.start(poll=...)` starts it, `await community.stop()` stops it.
"""

from __future__ import annotations

from collections.abc import Mapping

import discord

from .audit import AuditLog
from .community import Community
from .config import Settings
from .delivery.channels import Channels
from .desk import Desk
from .desk.limits import Cooldown
from .feed.engine import FeedEngine
from .lookups.service import Lookups
from .services import Services
from .units.engine import UnitsEngine


def build_community(
    client: discord.Client,
    settings: Settings,
    services: Services,
    *,
    serve: bool,
    guild_audit_channels: Mapping[int, int] | None = None,
    guild_roles: Mapping[int, tuple[list[int], list[int]]] | None = None,
) -> Community:
    """`serve=False`: a community that only answers commands (no engine, no writer, no port).
    `guild_audit_channels`, `guild_roles` (hosted mode): each linked guild's own audit channel, and
    its own dispatcher and caller roles."""
    community = Community(client, settings, services)
    community.audit = AuditLog(client, settings.audit.channel_id) if settings.audit.channel_id else None
    community.guild_audits = {
        guild_id: AuditLog(client, channel_id)
        for guild_id, channel_id in (guild_audit_channels or {}).items()
        if channel_id
    }
    community.guild_roles = dict(guild_roles or {})
    community.desk = Desk(community)
    community.lookups = Lookups(community)
    community.units_cooldown = Cooldown(settings.units.units_cooldown_seconds)
    if serve:
        channels = Channels(client)  # one writer per channel, for the feed and the units alike
        community.feed = FeedEngine(community, channels, UnitsEngine(community, channels))
    else:
        community.feed = None
    return community
