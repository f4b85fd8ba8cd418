"""The cluster for real, in short (issue 29): three bot processes on one PostgreSQL, twenty
communities on the sandbox CAD, the Discord doubles over loopback (tests/cluster_harness.py).
Calls come and go in the CAD for a while, most of them also sent as push events to a random
process; in the middle one process is SIGKILLed and later started again; then every community is
polled once more and the processes stop cleanly. Checked against what Discord and the CAD hold:

- every call the CAD still lists is shown once, as active; every other call shown, as ended;
  every call whose push event was answered 200 was shown; no call shown twice;
- every community was owned from its first acquisition to the stop, never by two processes at
  once (their tenures, from the bot.cluster log lines and the killed process's kill), with the
  fences in order; unowned only for the lease's length after a kill (plus slack for a slow machine);
- no key went past Sonoran's per-minute limit for any operation, and no request was answered 429.

The figures are printed (`pytest -s`) and repeated in every assertion's message.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from .cluster_harness import BotProcess, Cluster, judge, running_cluster, tenures_in

PROCESSES = 3
COMMUNITIES = 20
LEASE_SECONDS = 3.0
TRAFFIC_SECONDS = 30.0
KILL_AT, RESTART_AT = 10.0, 17.0  # seconds into the traffic
STEP = 0.25
SLACK = 10.0  # a loaded two-core CI machine runs five processes here, and PostgreSQL


async def traffic(cluster: Cluster, rng: random.Random, figures: dict[str, float]) -> None:
    """Calls added and removed at random for TRAFFIC_SECONDS, most also pushed; one process killed
    and started again in the middle."""
    began = time.monotonic()
    killed = restarted = False
    victim = 1
    while (elapsed := time.monotonic() - began) < TRAFFIC_SECONDS:
        if not killed and elapsed >= KILL_AT:
            owned = sum(1 for owner in cluster.owners().values() if owner == cluster.current[victim].name)
            figures["victim_owned"] = owned
            await cluster.kill(victim)
            killed = True
        if killed and not restarted and elapsed >= RESTART_AT:
            await cluster.restart(victim)
            restarted = True
        member = rng.choice(cluster.members)
        roll = rng.random()
        if roll < 0.55:
            call_id = cluster.add_call(member)
            if rng.random() < 0.65:
                await cluster.push_911(member, call_id)
        elif roll < 0.8:
            removed = cluster.remove_call(member)
            if removed is not None and rng.random() < 0.5:
                await cluster.push_removed(member, removed)
        await asyncio.sleep(STEP)


async def test_three_processes_twenty_communities_a_kill_and_a_restart_leave_every_channel_true(
    pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(20261229)
    figures: dict[str, float] = {}
    async with running_cluster(
        pg_url, tmp_path, processes=PROCESSES, communities=COMMUNITIES, lease_seconds=LEASE_SECONDS
    ) as cluster:
        started = time.monotonic()
        await cluster.all_owned(seconds=90)
        figures["start_s"] = time.monotonic() - started
        await traffic(cluster, rng, figures)
        await cluster.all_owned(seconds=60)  # the killed one's communities were taken over
        last_change = time.monotonic()
        await cluster.until(lambda: cluster.polled_since(last_change + 0.5), "a poll of every community", 90)
        await cluster.quiet()
        stopped_at, codes = await cluster.stop()
        rows = await cluster.leases()
        tally, ownership, budget = cluster.tally(), cluster.ownership(stopped_at), cluster.budget()

    took = f"started in {figures['start_s']:.1f}s; the killed process owned {figures['victim_owned']:.0f}"
    pushes = ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(cluster.push_answers.items()))
    said = "\n".join(
        [
            f"cluster: {PROCESSES} processes, {COMMUNITIES} communities, lease {LEASE_SECONDS}s; {took}",
            f"channels: {tally.figures()}",
            f"ownership: {ownership.figures()}",
            f"budget: {budget.figures()}",
            f"push answers: {pushes}",
        ]
    )
    print("\n" + said)

    assert codes == [0] * PROCESSES, f"exit codes {codes}\n{said}"
    assert tally.duplicates == [], f"{tally.duplicates}\n{said}"
    assert tally.lost == [], f"{tally.lost}\n{said}"
    assert tally.stale == [], f"{tally.stale}\n{said}"
    assert tally.refused == 0, f"{cluster.fake.refused[:3]}\n{said}"
    assert set(cluster.push_answers) == {200}, said

    assert ownership.overlaps == [], f"{ownership.overlaps}\n{said}"
    assert ownership.unowned == [], f"{ownership.unowned}\n{said}"
    assert ownership.fence_disorder == [], f"{ownership.fence_disorder}\n{said}"
    assert ownership.gaps_after_kill, f"the kill took no community over\n{said}"
    bound = LEASE_SECONDS * 4 / 3 + SLACK  # the takeover bound (ttl + tick), and slack
    assert max(ownership.gaps_after_kill) <= bound, said
    assert max(ownership.gaps_otherwise, default=0.0) <= bound, said
    last_fences = {tenant: max(t.fence for t in tenures) for tenant, tenures in ownership.tenures.items()}
    assert {community: fence for community, _, fence in rows} == last_fences, f"{rows}\n{said}"

    assert budget.over == [], f"{budget.over}\n{said}"
    assert budget.limited == 0, said


def logged(name: str, *lines: str, killed_at: float | None = None) -> BotProcess:
    index, _, start = name[1:].partition(".")
    process = BotProcess(int(index), int(start or 1), Path("unused.toml"), {}, Path("unused.log"))
    process.lines = [f"[{line.split(' ', 1)[0]}] [INFO   ] bot.cluster: {line.split(' ', 1)[1]}" for line in lines]
    process.killed_at = killed_at
    return process


def test_the_ownership_reading_sees_overlaps_gaps_kills_and_fences_out_of_order() -> None:
    """The readings the cluster test relies on, on log lines made up for it."""
    processes = [
        logged("p0", "100.0 lease of t1 acquired (fence 1)", "105.0 lease of t1: stopping it (not renewed in time)"),
        logged("p1", "104.0 lease of t1 acquired (fence 2)", "100.5 lease of t2 acquired (fence 1)", killed_at=108.0),
        logged("p2", "109.5 lease of t2 acquired (fence 2)", "110.0 lease of t1 acquired (fence 2)"),
        logged("p1.2", "120.0 lease of t3 acquired (fence 1)", "121.0 lease of t3: stopping it (dropped)"),
    ]
    ownership = judge(tenures_in(processes, ["t1", "t2", "t3"]), until=130.0)
    # t1: p1 took it while p0 still held it; p2's fence 2 after p1's 2
    assert len(ownership.overlaps) == 1 and ownership.overlaps[0].startswith("t1: p0 (fence 1"), ownership.overlaps
    assert ownership.fence_disorder == ["t1: fence 2 (p2) after 2"]
    assert sorted(ownership.gaps_after_kill) == [1.5, 2.0]  # p1 killed at 108: t2, t1 taken at 109.5, 110
    assert ownership.unowned == ["t3"]
    assert ownership.acquisitions == 6
