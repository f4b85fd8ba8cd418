"""What /setup says, as pure functions: the setup shown by `/setup show`, and the one-line
description of each change (the audit record's "what"). Never a key: only its fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import CallKind
from ..markdown import escape as escape_text
from .models import Change, CommunityOptions, GuildConfig, Tenant

CALLS_CHOICES: dict[str, list[CallKind]] = {
    "emergency": ["emergency"],
    "civil": ["civil"],
    "both": ["emergency", "civil"],
}


def calls_name(calls: Sequence[str]) -> str:
    return "both" if set(calls) == {"emergency", "civil"} else ", ".join(calls)


def _channel(channel_id: int) -> str:
    return f"<#{channel_id}>"


def _role(role_id: int) -> str:
    return f"<@&{role_id}>"


def show_text(
    tenant: Tenant,
    config: GuildConfig,
    *,
    push_url: str | None,
    other_servers: int,
    changes: Sequence[Change] = (),
) -> str:
    """`/setup show`: the community, its key as a fingerprint, this server's channels and roles, the
    community's cooldowns and push URL, and the last changes. Mentions are shown, never pinged
    (the reply is sent with no mentions allowed)."""
    lines = [
        f"**Community** {escape_text(tenant.community_id)} at {tenant.api_url}",
        f"**API key** fingerprint `{tenant.fingerprint}` (the key itself is never shown)",
    ]
    if other_servers:
        lines.append(f"Also linked from {other_servers} other Discord server(s); each keeps its own channels.")
    lines.append("**Feeds**")
    lines += [
        f"- {_channel(feed.channel_id)}: server {feed.server_id}, {calls_name(feed.calls)} 911 calls"
        + (", dispatch calls" if feed.dispatch else "")
        + (f", pings {_role(feed.ping_role_id)}" if feed.ping_role_id else "")
        for feed in config.feeds
    ] or ["- none yet: /setup feed"]
    if config.alerts:
        lines.append("**Panic alerts**")
        lines += [
            f"- {_channel(alert.channel_id)}: server {alert.server_id}"
            + (f", pings {_role(alert.ping_role_id)}" if alert.ping_role_id else "")
            for alert in config.alerts
        ]
    if config.boards:
        lines.append("**Unit boards**")
        lines += [f"- {_channel(board.channel_id)}: server {board.server_id}" for board in config.boards]
    lines.append(f"**Audit channel** {_channel(config.audit_channel_id) if config.audit_channel_id else 'none'}")
    lines.append(f"**Dispatcher roles** {roles(config.dispatcher_role_ids, 'none: Manage Server only')}")
    lines.append(f"**Caller roles** {roles(config.caller_role_ids, 'none: everyone may file 911 calls')}")
    lines.append(f"**Cooldowns** {cooldowns_text(tenant.options)}")
    if push_url:
        lines.append(f"**Push URL** ||{push_url}|| (a secret: /setup push-rotate replaces it)")
    if changes:
        lines.append("**Last changes**")
        lines += [f"- <t:{int(change.at)}:R> {escape_text(change.member_name)}: {change.what}" for change in changes]
    return "\n".join(lines)


def roles(role_ids: Sequence[int], empty: str) -> str:
    return ", ".join(_role(role_id) for role_id in role_ids) or empty


def cooldowns_text(options: CommunityOptions) -> str:
    return (
        f"/911 every {options.cooldown_911_seconds:g} s, /units every {options.units_cooldown_seconds:g} s, "
        f"/status and /panic every {options.member_cooldown_seconds:g} s per member"
    )
