"""Pure planning for hosted mode: the `Settings` one hosted community runs on, made of what the
deployment owns (Discord, state folder, push, logging, unit defaults) and what its guilds set up
with /setup. The rooms of a community read `Settings` and nothing else, so a hosted community is
built exactly as the TOML mode's one community is (`bot.app.build_community`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from pydantic import AnyHttpUrl, SecretStr

from ..config import CommandSettings, Settings, SonoranSettings, StateSettings
from .models import GuildConfig, Tenant

HOSTED_API_VERSION = 2  # Sonoran's current API, which the official plugins use; /setup asks no version
FEED_POLL_SECONDS = 20.0  # the TOML mode's default; slower only when the feeds' servers need it


def community_state_path(deployment: Settings, tenant_id: str) -> Path:
    """Where a hosted community keeps its own state file, beside the registry (`state.path`), when
    the state is SQLite; on PostgreSQL each has a schema instead (`community_schema`)."""
    return deployment.state.path.parent / "communities" / f"{tenant_id}.sqlite3"


def community_schema(tenant_id: str) -> str:
    """Where a hosted community keeps its state on PostgreSQL (`state.url`): a schema of its own."""
    return f"community_{tenant_id}"


def poll_seconds_for(servers: int, per_minute: int, floor: float) -> float:
    """The shortest interval, at least `floor`, that polls `servers` within `per_minute` requests."""
    return max(floor, math.ceil(max(servers, 1) * 60 / per_minute))


def sonoran_settings(community_id: str, api_key: str, api_url: str) -> SonoranSettings:
    return SonoranSettings(
        community_id=community_id,
        api_key=SecretStr(api_key),
        api_url=AnyHttpUrl(api_url),
        api_version=HOSTED_API_VERSION,
    )


def community_settings(
    deployment: Settings,
    tenant: Tenant,
    guilds: Mapping[int, GuildConfig],
) -> Settings:
    """The settings of `tenant` with every guild linked to it. Raises pydantic's ValidationError
    where the combination cannot run (the caller, /setup, says so before storing anything)."""
    configs = [guilds[guild_id] for guild_id in sorted(guilds)]
    options = tenant.options
    feeds = [feed for config in configs for feed in config.feeds]
    boards = [board for config in configs for board in config.boards]
    alerts = [alert for config in configs for alert in config.alerts]
    cad = sonoran_settings(tenant.community_id, tenant.api_key.get_secret_value(), tenant.api_url)
    feed_servers = len({feed.server_id for feed in feeds})
    unit_servers = len({board.server_id for board in boards} | {alert.server_id for alert in alerts})
    cad = cad.model_copy(
        update={"poll_seconds": poll_seconds_for(feed_servers, cad.rate_limits.get_calls, FEED_POLL_SECONDS)}
    )
    units = deployment.units.model_copy(
        update={
            "poll_seconds": poll_seconds_for(
                unit_servers, cad.rate_limits.get_active_units, deployment.units.poll_seconds
            ),
            "member_cooldown_seconds": options.member_cooldown_seconds,
            "units_cooldown_seconds": options.units_cooldown_seconds,
        }
    )
    # roles are each guild's own (`guild_roles`, read by `Community.dispatcher_role_ids` and
    # `caller_role_ids`): a role id belongs to one guild, and an empty list means "everyone" there
    commands = CommandSettings(cooldown_911_seconds=options.cooldown_911_seconds)
    return Settings(
        discord=deployment.discord,
        sonoran=cad,
        commands=commands,
        # no health file: the host stamps the deployment's (one file, not one write per community)
        state=StateSettings(
            path=community_state_path(deployment, tenant.id),
            url=deployment.state.url,
            schema_name=community_schema(tenant.id),
        ),
        feeds=feeds,
        push=deployment.push,
        units=units,
        boards=boards,
        alerts=alerts,
        logging=deployment.logging,
    )


def guild_roles(guilds: Mapping[int, GuildConfig]) -> dict[int, tuple[list[int], list[int]]]:
    return {
        guild_id: (list(config.dispatcher_role_ids), list(config.caller_role_ids))
        for guild_id, config in guilds.items()
    }


def guild_audit_channels(guilds: Mapping[int, GuildConfig]) -> dict[int, int]:
    return {guild_id: config.audit_channel_id for guild_id, config in guilds.items() if config.audit_channel_id}
