"""A process that holds one community's lease until it is killed: `python -m tests.cluster_holder
URL SCHEMA COMMUNITY TTL`. Prints `acquired FENCE` once it holds it."""

from __future__ import annotations

import asyncio
import sys

from bot.cluster import Lease, LeaseKeeper, open_cluster, process_id


async def hold(url: str, schema: str, community: str, ttl: float) -> None:
    db = await open_cluster(url, schema)

    async def acquired(name: str, lease: Lease) -> None:
        print(f"acquired {lease.fence}", flush=True)

    keeper = LeaseKeeper(db, f"holder-{process_id()}", ttl, on_acquired=acquired)
    await keeper.start()
    keeper.want(community)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(hold(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
