"""Many processes, one deployment: which process works which community (lease rows in
PostgreSQL, `leases`), which processes are alive (`members`), and `python -m bot cluster`
(`cli`). See `leases` for how the hosted `Host` is to use it."""

from __future__ import annotations

from .leases import DEFAULT_TTL, Lease, LeaseKeeper, Leases
from .members import LeaseView, Membership, MemberView, cluster_view, lease_view, process_id
from .schema import SCHEMA, cluster_schema, open_cluster

__all__ = [
    "DEFAULT_TTL",
    "SCHEMA",
    "Lease",
    "LeaseKeeper",
    "LeaseView",
    "Leases",
    "MemberView",
    "Membership",
    "cluster_schema",
    "cluster_view",
    "lease_view",
    "open_cluster",
    "process_id",
]
