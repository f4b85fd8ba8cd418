"""The cluster (issue 29) measured with real processes: bot processes on one PostgreSQL (a throwaway
server of this run's own, with pg_stat_statements loaded), 20 communities on one sandbox CAD, the
Discord doubles over loopback: the harness of the cluster test (tests/cluster_harness.py).

It prints:
- takeover after a SIGKILL, over several kills: the process holding the most communities is
  killed, right after one new call was put in the CAD of each community it held (in the CAD only:
  no event brings it); per community, from the kill to its lease acquired by another process (the
  bot's own log stamp), and from the kill to the new call's card POSTed at the Discord double
  (the new owner's first poll); p50 and max. The killed process is started again after each.
- event -> POST with 1 and with 3 processes: a call put in a community's CAD and its EVENT_911 sent
  at once to a random process's listener (with 3, mostly not the owner: stored in PostgreSQL, the
  owner woken), timed from just before the POST to the card POSTed at the Discord double (one
  clock, this process's); p50, p99, max.
- requests per key per minute against Sonoran's limits: each operation's busiest sliding minute
  of any one key over the whole 3-process run (kills and restarts included), the number of 429s,
  and the mean get_calls per key per minute.
- database round trips per idle poll cycle: over an idle window (no call, no event), the
  statements the server ran for this deployment's database (pg_stat_statements' calls: each is a
  round trip; BEGIN and COMMIT are counted) and its committed transactions
  (pg_stat_database.xact_commit), divided by the polls the CAD answered in the window; with the
  same per second, since lease renewals and heartbeats run whether or not a poll does; and the
  statements run most often.

`--quick`: lease 3 s, 2 kills, 40 events, a 45 s idle window (about 4 minutes); the full run:
lease 15 s (the default), 4 kills, 100 events, a 70 s window. `--json`: the figures as JSON.
Printed, never asserted.

    python -m bench.cluster [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench._common import percentile, report
from tests.cluster_harness import Cluster, running_cluster
from tests.pg import throwaway_server

COMMUNITIES = 20
STATEMENTS = "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
TAKEOVER_GOAL_S = 30.0  # the bound, with the default lease


@dataclass(frozen=True)
class Plan:
    lease_seconds: float
    kills: int
    events: int
    idle_seconds: float


QUICK = Plan(3.0, 2, 40, 45.0)
FULL = Plan(15.0, 4, 100, 70.0)


async def settled(cluster: Cluster, seconds: float = 120) -> None:
    """Every community owned, and no lease changed hands for two lease lengths."""
    await cluster.all_owned(seconds)
    stable, before = time.monotonic(), cluster.owners()
    give_up = time.monotonic() + seconds
    while time.monotonic() - stable < 2 * cluster.lease_seconds and time.monotonic() < give_up:
        await asyncio.sleep(0.2)
        now = cluster.owners()
        if now != before:
            stable, before = time.monotonic(), now


async def event_to_post(cluster: Cluster, events: int) -> list[float]:
    """Milliseconds from each push event sent to its card POSTed."""
    sent: dict[tuple[int, int], float] = {}
    for _ in range(events):
        member = cluster.rng.choice(cluster.members)
        call_id = cluster.add_call(member)
        sent[member.channel_id, call_id] = time.monotonic()
        await cluster.push_911(member, call_id)
        await asyncio.sleep(cluster.rng.uniform(0.1, 0.3))

    def first_posts() -> dict[tuple[int, int], float]:
        out: dict[tuple[int, int], float] = {}
        for at, channel, ids in cluster.posted:
            for call_id in ids:
                out.setdefault((channel, call_id), at)
        return out

    await cluster.until(lambda: sent.keys() <= first_posts().keys(), "every event's card", 120)
    posted = first_posts()
    return [(posted[key] - at) * 1e3 for key, at in sent.items()]


async def takeovers(cluster: Cluster, kills: int) -> tuple[list[float], list[float]]:
    """Seconds from each kill to each of its communities' lease acquired by another process, and
    to the first card of a call added at the kill."""
    leases: list[float] = []
    cards: list[float] = []
    for _ in range(kills):
        await settled(cluster)
        owners = cluster.owners()
        victim = max(cluster.current, key=lambda p: sum(1 for o in owners.values() if o == p.name))
        held = {m.tenant_id: m for m in cluster.members if owners.get(m.tenant_id) == victim.name}
        added = {(m.channel_id, cluster.add_call(m)) for m in held.values()}
        killed_mono = time.monotonic()
        killed = await cluster.kill(victim.index)

        def all_shown(added: set[tuple[int, int]] = added) -> bool:
            return added <= {(channel, i) for _, channel, ids in cluster.posted for i in ids}

        await cluster.until(all_shown, "the cards of the calls added at the kill", 120)
        for tenant, tenures in cluster.tenures().items():
            if tenant in held:
                after = [t.start for t in tenures if t.start > killed and t.process != victim.name]
                leases.append(min(after) - killed)
        first: dict[tuple[int, int], float] = {}
        for at, channel, ids in cluster.posted:
            for call_id in ids:
                if (channel, call_id) in added:
                    first.setdefault((channel, call_id), at)
        cards += [at - killed_mono for at in first.values()]
        await cluster.restart(victim.index)
    return leases, cards


async def idle_round_trips(cluster: Cluster, seconds: float) -> dict[str, Any]:
    """Statements and transactions per poll over an idle window."""
    await settled(cluster)
    await cluster.quiet()
    connection = await asyncpg.connect(cluster.db_url)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        polls_before = sum(1 for m in cluster.members for r in m.cad.requests if r.operation == "get_calls")
        await connection.execute("SELECT pg_stat_statements_reset()")
        await connection.execute("SELECT pg_stat_force_next_flush()")
        commits_before = await _commits(connection)
        await asyncio.sleep(seconds)
        statements = await connection.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND s.query NOT ILIKE '%pg_stat%'"
        )
        top = await connection.fetch(
            "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
            "AND s.query NOT ILIKE '%pg_stat%' ORDER BY calls DESC LIMIT 5"
        )
        await connection.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(1.5)  # the backends flush their counts when idle, at most once a second
        commits = await _commits(connection) - commits_before
    finally:
        await connection.close()
    polls = sum(1 for m in cluster.members for r in m.cad.requests if r.operation == "get_calls") - polls_before
    return {
        "window_s": seconds,
        "polls": polls,
        "statements": int(statements),
        "commits": commits,
        "statements_per_poll": round(int(statements) / max(polls, 1), 2),
        "commits_per_poll": round(commits / max(polls, 1), 2),
        "statements_per_s": round(int(statements) / seconds, 2),
        "top": [{"per_s": round(int(row["calls"]) / seconds, 2), "query": str(row["query"])} for row in top],
    }


async def _commits(connection: asyncpg.Connection) -> int:
    value = await connection.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    return int(value)


def _spread(values: list[float], digits: int = 1) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(percentile(values, 50), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


async def one_cluster(server: str, plan: Plan, processes: int, *, kills: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        async with running_cluster(
            server, Path(tmp), processes=processes, communities=COMMUNITIES, lease_seconds=plan.lease_seconds
        ) as cluster:
            began = time.monotonic()
            await settled(cluster)
            figures: dict[str, Any] = {"processes": processes, "started_s": round(time.monotonic() - began, 1)}
            figures["event_to_post_ms"] = _spread(await event_to_post(cluster, plan.events))
            figures["idle"] = await idle_round_trips(cluster, plan.idle_seconds)
            if kills:
                leases, cards = await takeovers(cluster, kills)
                figures["takeover_lease_s"] = _spread(leases, 2)
                figures["takeover_card_s"] = _spread(cards, 2)
            budget = cluster.budget()
            minutes = (time.monotonic() - began) / 60
            get_calls = sum(1 for m in cluster.members for r in m.cad.requests if r.operation == "get_calls")
            figures["budget"] = {
                "busiest_minute": {op: {"most": n, "limit": limit} for op, (n, limit) in budget.busiest.items()},
                "over": budget.over,
                "answered_429": budget.limited,
                "get_calls_per_key_per_minute": round(get_calls / COMMUNITIES / minutes, 2),
            }
            await cluster.stop()
        return figures


def lines_for(plan: Plan, runs: list[dict[str, Any]]) -> list[str]:
    lines = [f"bench.cluster: {COMMUNITIES} communities, lease {plan.lease_seconds:g}s (takeover bound ttl + ttl/3)"]
    for run in runs:
        n = run["processes"]
        lines.append(f"\n{n} process{'es' if n > 1 else ''} (settled in {run['started_s']}s):")
        e = run["event_to_post_ms"]
        lines.append(f"  event -> POST: p50 {e['p50']} ms, p99 {e['p99']} ms, max {e['max']} ms ({e['n']} events)")
        if "takeover_lease_s" in run:
            lease, card = run["takeover_lease_s"], run["takeover_card_s"]
            lines.append(
                f"  takeover after SIGKILL ({plan.kills} kills, {lease.get('n', 0)} communities): lease p50 "
                f"{lease.get('p50')}s, max {lease.get('max')}s; first card p50 {card.get('p50')}s, max "
                f"{card.get('max')}s (goal: within {TAKEOVER_GOAL_S:g}s with the default lease)"
            )
        b = run["budget"]
        busiest = ", ".join(f"{op} {v['most']}/{v['limit']}" for op, v in sorted(b["busiest_minute"].items()))
        lines.append(
            f"  requests per key per minute: busiest minute {busiest}; {b['answered_429']} answered 429; "
            f"get_calls {b['get_calls_per_key_per_minute']} per key per minute on average"
            + (f"; OVER: {b['over']}" if b["over"] else "")
        )
        i = run["idle"]
        lines.append(
            f"  idle {i['window_s']:g}s, {i['polls']} polls: {i['statements_per_poll']} statements "
            f"(round trips) and {i['commits_per_poll']} commits per poll; {i['statements_per_s']} statements/s; most:"
        )
        lines.extend(f"    {t['per_s']:>6}/s  {t['query']}" for t in i["top"])
    return lines


async def run(plan: Plan) -> list[dict[str, Any]]:
    with throwaway_server(STATEMENTS) as server:
        one = await one_cluster(server, plan, 1, kills=0)
        three = await one_cluster(server, plan, 3, kills=plan.kills)
    return [one, three]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    runs = asyncio.run(run(plan))
    report({"plan": plan.__dict__, "runs": runs}, lines_for(plan, runs))


if __name__ == "__main__":
    main()
