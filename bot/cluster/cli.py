"""`python -m bot cluster`: the processes of a deployment on PostgreSQL, their shards and the
communities each owns; with SQLite, one line (one process owns everything)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import asyncpg

from bot.config import Settings
from bot.db import DatabaseError, PostgresDatabase, redact_url
from bot.db.postgres import quote

from .members import LeaseView, MemberView, cluster_view, lease_view
from .schema import cluster_schema, open_cluster

EXIT_OK, EXIT_PROBLEM = 0, 1


def report(members: list[MemberView], leases: list[LeaseView], names: Mapping[str, str] | None = None) -> list[str]:
    """The lines `cluster` prints; `names`: a hosted tenant's id -> its Sonoran community ID."""
    names = names or {}

    def named(community: str) -> str:
        return f"{names[community]} ({community})" if community in names else community

    lines = [f"{len(members)} process{'' if len(members) == 1 else 'es'} alive"]
    listed = {member.id for member in members}
    for member in members:
        shards = f"shards {member.shard_ids} of {member.shard_count}" if member.shard_ids else "no shards"
        lines.append(
            f"{member.id}  host {member.host}  pid {member.pid}  {shards}  heartbeat {member.heartbeat_age:.1f}s ago  "
            f"owns {len(member.communities)}: {', '.join(map(named, member.communities)) or '-'}"
        )
    unlisted = [lease for lease in leases if lease.expires_in > 0 and lease.owner not in listed]
    for lease in unlisted:  # a process that holds leases without a live member row
        lines.append(
            f"{named(lease.community)}: held by {lease.owner} (no live process row), {lease.expires_in:.1f}s left"
        )
    expired = [lease for lease in leases if lease.expires_in <= 0]
    if expired:
        lines.append(f"{len(expired)} communit{'y' if len(expired) == 1 else 'ies'} with an expired or released lease:")
        lines.extend(
            f"  {named(lease.community)}: last held by {lease.owner} "
            f"(fence {lease.fence}), {-lease.expires_in:.1f}s ago"
            for lease in expired
        )
    return lines


async def _names(db: PostgresDatabase, settings: Settings) -> dict[str, str]:
    """The hosted registry's community IDs by tenant id (no secret read), when there is one."""
    from bot.hosting.registry import registry_schema

    try:
        rows = await db.fetch(f"SELECT id, community_id FROM {quote(registry_schema(settings.state))}.tenants")
    except asyncpg.UndefinedTableError:
        return {}
    return {row["id"]: row["community_id"] for row in rows}


async def cluster(settings: Settings, schema: str | None = None) -> int:
    url = settings.state.postgres_url
    if url is None:
        print(f"state is SQLite ({settings.state.path}): a single process owns every community; no cluster to show")
        return EXIT_OK
    try:
        db = await open_cluster(url, schema or cluster_schema(settings.state))
    except (OSError, TimeoutError, asyncpg.PostgresError, *DatabaseError) as error:
        print(f"cluster: cannot open {redact_url(url)} ({type(error).__name__})", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        for line in report(await cluster_view(db), await lease_view(db), await _names(db, settings)):
            print(line)
    finally:
        await db.close()
    return EXIT_OK
