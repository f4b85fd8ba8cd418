"""Many communities in one bot process (hosted mode's "Scale in one process", issue 28): 1, 100 and
1,000 communities, each built as the TOML mode builds its one (`Settings` -> `open_services` ->
`bot.app.build_community` -> `start(poll=True)`), all sharing ONE aiohttp session and ONE
discord.Client, each with one feed polled every 20 s, against ONE sandbox CAD process serving
them all (`bench.cad_server --communities N`: its own ID, key, calls and per-key budget each) and
the Discord double in a process of its own (`bench.discord_server`). Only 127.0.0.1.

For each N it prints:
- resident memory per community at idle: RSS after every community started and one poll cycle
  passed (every community polled once and posted its calls), minus RSS before the first was built,
  divided by N; with the threads and open files per community;
- event-loop lag p99 while they poll: a task sleeping 10 ms measures its oversleep, over at least
  one full poll cycle (20 s; two in the full run);
- CPU per idle poll per community: process CPU time (every thread, SQLite's included) over that
  window, less the lag sampler's own (measured alone first), divided by the polls the CAD answered;
- event -> POST for ONE community while the other N-1 poll, p50/p99, and the ratio to N=1.

How event -> POST is measured. With polls every 20 s, the time from a call appearing to its post is
mostly where in the cycle it lands (uniform over 0-20 s), which says nothing about scale. So the
call is first added to the community's CAD (as the CAD would have it), then two roads are timed:
- push: the EVENT_911 Sonoran would send is read (`read_envelope`, `events_of`) and handed to the
  community's `FeedEngine.take_events`, as the push listener does after its key check; timed from
  then to the POST made at the Discord double (time.monotonic() is one clock across processes);
- poll: right after the call is added, the community's own `FeedEngine.cycle()` runs out of step
  with its loop (the GET goes through the shared session, queued behind the others' polls if the
  connector is full); timed from the call's addition to the POST. That community's CAD budget and
  client budget are generous, so these extra polls are never refused.
Events come every 0.2-0.5 s, so they fall all over the others' poll cycle.

The full run adds 1,000 communities whose poll loops all start at the same moment once all are
built (the worst case: 1,000 polls at once every 20 s; otherwise each polls from its own start,
spread over the ~15 s that building 1,000 takes), and a tracemalloc run of 100 (the Python heap
per community, by file). `--quick`: one cycle per window, fewer events, neither extra run (about
3 minutes); the full run about 8 minutes.
`--sizes 1,100`: other sizes. `--json`: the figures as JSON. Goals are printed, never asserted.

    python -m bench.communities [--quick] [--sizes 1,100,1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
import discord.http

from bench._common import ROOT, cad_process, percentile, report, rss_mib
from bench.cad_server import community as community_credentials
from bench.push import DiscordProcess
from bot.app import build_community
from bot.community import Community
from bot.config import Settings
from bot.core import HOSTED_CONNECTIONS
from bot.hosting.netguard import hosted_connector
from bot.services import open_services
from bot.sonoran.events import events_of, read_envelope
from tests.helpers import DISCORD_TOKEN, GENEROUS_LIMITS

POLL_SECONDS = 20.0
CHANNEL_BASE = 700_000  # community i posts to channel CHANNEL_BASE + i
CALLS_EACH = 2  # open 911 calls in each community's CAD (one message each at the first poll)
STARTING_AT_ONCE = 50  # communities being built and started at the same time
STORE_CACHE_KIB = 256  # each state file's SQLite page cache at most, as hosted mode should open them
GOAL_MIB = 0.5
GOAL_LAG_MS = 50.0
GOAL_RATIO = 2.0


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    window: float  # seconds of the lag and CPU window (at least one poll cycle)
    push_events: int
    push_every: float
    poll_events: int
    poll_every: float
    trace: int  # communities in the tracemalloc run (0: none)
    in_step: int  # communities in a run whose polls all start at the same moment (0: none)


QUICK = Plan((1, 100, 1_000), POLL_SECONDS + 1, 30, 0.25, 10, 0.5, 0, 0)
FULL = Plan((1, 100, 1_000), 2 * POLL_SECONDS + 1, 100, 0.2, 40, 0.5, 100, 1_000)


def settings_for(index: int, cad_url: str, state: Path) -> Settings:
    community_id, api_key = community_credentials(index)
    sonoran: dict[str, Any] = {
        "community_id": community_id,
        "api_key": api_key,
        "api_url": cad_url,
        "poll_seconds": POLL_SECONDS,
    }
    if index == 0:  # the community whose events are timed: its extra polls are never refused
        sonoran["rate_limits"] = GENEROUS_LIMITS
    return Settings(
        discord={"token": DISCORD_TOKEN, "guild_ids": []},
        sonoran=sonoran,
        feeds=[{"server_id": 1, "channel_id": CHANNEL_BASE + index}],
        state={"path": str(state / f"community-{index}.sqlite3")},
    )


class Hosted:
    """N communities built and started as hosted mode builds them, on one session and one client."""

    def __init__(self, client: discord.Client, session: aiohttp.ClientSession, cad_url: str, state: Path) -> None:
        self.client, self.session, self.cad_url, self.state = client, session, cad_url, state
        self.communities: list[Community] = []
        self._stacks: list[contextlib.AsyncExitStack] = []

    async def start(self, count: int, *, in_step: bool = False) -> None:
        """`in_step`: every feed's loop started at the same moment once all are built (the worst
        case: N polls at once every cycle); else each polls from its own start, as built."""
        gate = asyncio.Semaphore(STARTING_AT_ONCE)
        built: dict[int, tuple[Community, contextlib.AsyncExitStack]] = {}

        async def one(index: int) -> None:
            async with gate:
                stack = contextlib.AsyncExitStack()
                settings = settings_for(index, self.cad_url, self.state)
                opened = open_services(settings, session=self.session, store_cache_kib=STORE_CACHE_KIB)
                services = await stack.enter_async_context(opened)
                community = build_community(self.client, settings, services, serve=True)
                await community.start(poll=not in_step)
                stack.push_async_callback(community.stop)
                built[index] = (community, stack)

        await asyncio.gather(*(one(i) for i in range(count)))
        for index in range(count):
            self.communities.append(built[index][0])
            self._stacks.append(built[index][1])
        if in_step:
            for community in self.communities:
                assert community.feed is not None
                community.feed.start_polling()

    async def stop(self) -> None:
        await asyncio.gather(*(stack.aclose() for stack in self._stacks))


async def cad_count(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/_bench/count") as response:
        return int(await response.text())


async def add_call(session: aiohttp.ClientSession, url: str, community_id: str) -> int:
    async with session.post(f"{url}/_bench/add911", params={"community": community_id}) as response:
        return int(await response.text())


async def lag_sampler(stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.010)
        out.append((time.perf_counter() - start - 0.010) * 1e3)


async def sampler_cpu_per_second() -> float:
    """The lag sampler's own CPU, alone (subtracted from the window's)."""
    stop, lags = asyncio.Event(), list[float]()
    task = asyncio.create_task(lag_sampler(stop, lags))
    start, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(2.0)
    stop.set()
    await task
    return (time.process_time() - start) / (time.perf_counter() - wall)


async def until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.2)


def event_body(call_id: int) -> bytes:
    call = {"callId": call_id, "isEmergency": True, "caller": "Bench Caller", "location": "Route 68"}
    return json.dumps({"type": "EVENT_911", "data": {"call": {**call, "description": "Benchmark call"}}}).encode()


async def time_events(
    plan: Plan, target: Community, session: aiohttp.ClientSession, cad_url: str, discord_api: DiscordProcess
) -> tuple[list[float], list[float]]:
    """Milliseconds from event to POST for the target community: the push road, then the poll road."""
    community_id = target.settings.cad.community_id
    channel = str(CHANNEL_BASE)
    feed = target.feed
    assert feed is not None
    roads: list[list[float]] = []
    roads_to_time = (("push", plan.push_events, plan.push_every), ("poll", plan.poll_events, plan.poll_every))
    for road, count, every in roads_to_time:
        started: dict[int, float] = {}
        for _ in range(count):
            if road == "push":
                call_id = await add_call(session, cad_url, community_id)
                started[call_id] = time.monotonic()
                await feed.take_events(1, list(events_of(read_envelope(event_body(call_id)))))
            else:
                at = time.monotonic()
                call_id = await add_call(session, cad_url, community_id)
                started[call_id] = at
                await feed.cycle()
            await asyncio.sleep(every)

        def posted(made: list[tuple[float, str, list[int]]], started: dict[int, float] = started) -> bool:
            return sum(1 for _, c, ids in made if c == channel for i in ids if i in started) >= len(started)

        async with asyncio.timeout(60):
            await discord_api.until(posted)
        roads.append(
            [(at - started[i]) * 1e3 for at, c, ids in discord_api.made if c == channel for i in ids if i in started]
        )
    return roads[0], roads[1]


async def one_size(
    plan: Plan, count: int, sampler_cpu: float, workdir: Path, *, trace: bool = False, in_step: bool = False
) -> dict[str, Any]:
    state = workdir / f"n{count}{'-trace' if trace else ''}{'-step' if in_step else ''}"
    state.mkdir()
    with cad_process(emergency=CALLS_EACH, communities=count, free_first=True) as cad_url:
        async with DiscordProcess() as discord_api, aiohttp.ClientSession() as bench_session:
            base = discord.http.Route.BASE
            discord.http.Route.BASE = discord_api.url
            client = discord.Client(intents=discord.Intents.none(), max_messages=None, max_ratelimit_timeout=30.0)
            try:
                await client.login("bench-token")
                # every community's CAD client uses this one, with the connector hosted mode gives it
                connector = hosted_connector(HOSTED_CONNECTIONS, allow_private=True)
                async with aiohttp.ClientSession(connector=connector) as shared:
                    hosted = Hosted(client, shared, cad_url, state)
                    gc.collect()
                    threads_before, files_before = threading.active_count(), len(os.listdir("/proc/self/fd"))
                    if trace:
                        tracemalloc.start()
                    rss_before = rss_mib()
                    began = time.perf_counter()
                    polled_before = await cad_count(bench_session, cad_url)
                    try:
                        await hosted.start(count, in_step=in_step)
                        started_in = time.perf_counter() - began

                        async def cycle_done() -> bool:
                            made = sum(1 for _ in discord_api.made)
                            return await cad_count(bench_session, cad_url) - polled_before >= count and made >= count

                        await until(cycle_done, 3 * POLL_SECONDS + 60, "every community's first poll and post")
                        for c in hosted.communities:
                            assert c.feed is not None
                            await c.feed.settled()
                        gc.collect()
                        await asyncio.sleep(1.0)
                        rss_after = rss_mib()
                        figures: dict[str, Any] = {
                            "communities": count,
                            "in_step": in_step,
                            "start_s": round(started_in, 1),
                            "rss_mib_before": round(rss_before, 1),
                            "rss_mib_after": round(rss_after, 1),
                            "mib_per_community": round((rss_after - rss_before) / count, 3),
                            "threads_per_community": round((threading.active_count() - threads_before) / count, 2),
                            "files_per_community": round((len(os.listdir("/proc/self/fd")) - files_before) / count, 2),
                            "tasks": len(asyncio.all_tasks()),
                        }
                        if trace:
                            figures["python_heap"] = heap_figures(count)
                            tracemalloc.stop()
                            return figures
                        # the lag and CPU window: the communities poll, nothing else happens
                        stop, lags = asyncio.Event(), list[float]()
                        sampler = asyncio.create_task(lag_sampler(stop, lags))
                        polls_at, cpu_at, wall_at = (
                            await cad_count(bench_session, cad_url),
                            time.process_time(),
                            time.perf_counter(),
                        )
                        await asyncio.sleep(plan.window)
                        cpu = time.process_time() - cpu_at
                        wall = time.perf_counter() - wall_at
                        stop.set()
                        await sampler
                        polls = await cad_count(bench_session, cad_url) - polls_at  # the count requests are not counted
                        figures.update(
                            window_s=round(wall, 1),
                            polls=polls,
                            lag_p50_ms=round(percentile(lags, 50), 2),
                            lag_p99_ms=round(percentile(lags, 99), 2),
                            lag_max_ms=round(max(lags), 1),
                            cpu_ms_per_poll=round(max(0.0, cpu - sampler_cpu * wall) / max(polls, 1) * 1e3, 3),
                            cpu_share=round(cpu / wall, 3),
                        )
                        push, poll = await time_events(plan, hosted.communities[0], bench_session, cad_url, discord_api)
                        figures.update(
                            push_p50_ms=round(percentile(push, 50), 2),
                            push_p99_ms=round(percentile(push, 99), 2),
                            push_events=len(push),
                            poll_p50_ms=round(percentile(poll, 50), 2) if poll else None,
                            poll_p99_ms=round(percentile(poll, 99), 2) if poll else None,
                            poll_events=len(poll),
                        )
                        return figures
                    finally:
                        if tracemalloc.is_tracing():
                            tracemalloc.stop()
                        await hosted.stop()
            finally:
                await client.close()
                discord.http.Route.BASE = base


def heap_figures(count: int) -> dict[str, Any]:
    """The Python heap per community, and where most of it was allocated (by file)."""
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("filename")
    total = sum(s.size for s in stats)
    top = [
        {"file": _short(s.traceback[0].filename), "kib_per_community": round(s.size / count / 1024, 1)}
        for s in stats[:8]
    ]
    return {"kib_per_community": round(total / count / 1024, 1), "top": top}


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/bot/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1] if marker != "/bot/" else "bot/" + filename.split(marker, 1)[1]
    return filename


def lines_for(results: list[dict[str, Any]], heap: dict[str, Any] | None) -> list[str]:
    base = next((r for r in results if r["communities"] == 1), None)
    lines = [
        f"{'N':>5} {'start':>6} {'MiB/comm':>9} {'thr/comm':>8} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} "
        f"{'CPU/poll':>9} {'push p50':>9} {'push p99':>9} {'poll p50':>9} {'poll p99':>9}"
    ]
    for r in results:
        poll50 = f"{r['poll_p50_ms']:.1f}" if r.get("poll_p50_ms") is not None else "-"
        poll99 = f"{r['poll_p99_ms']:.1f}" if r.get("poll_p99_ms") is not None else "-"
        name = str(r["communities"]) + ("*" if r["in_step"] else "")
        lines.append(
            f"{name:>5} {r['start_s']:>5.1f}s {r['mib_per_community']:>9.3f} "
            f"{r['threads_per_community']:>8.2f} {r['lag_p50_ms']:>6.2f}ms {r['lag_p99_ms']:>6.1f}ms "
            f"{r['lag_max_ms']:>6.1f}ms {r['cpu_ms_per_poll']:>7.3f}ms {r['push_p50_ms']:>7.1f}ms "
            f"{r['push_p99_ms']:>7.1f}ms {poll50:>7}ms {poll99:>7}ms"
        )
    if any(r["in_step"] for r in results):
        lines.append("  * every feed's loop started at the same moment: N polls at once every cycle (worst case)")
    lines.append("")
    lines.append("goals (issue 28), printed, not asserted:")
    for r in results:
        n = r["communities"]
        ratio_push = r["push_p99_ms"] / base["push_p99_ms"] if base else float("nan")
        ratio_poll = None
        if base and r.get("poll_p99_ms") and base.get("poll_p99_ms"):
            ratio_poll = r["poll_p99_ms"] / base["poll_p99_ms"]
        lines.append(
            f"  N={n}{' in step' if r['in_step'] else ''}: "
            f"{r['mib_per_community']:.3f} MiB per idle community (goal <= {GOAL_MIB}); "
            f"loop lag p99 {r['lag_p99_ms']:.1f} ms (goal <= {GOAL_LAG_MS:g} at 1,000); "
            f"event->POST p99 {ratio_push:.2f}x N=1 on push"
            + (f", {ratio_poll:.2f}x on poll" if ratio_poll is not None else "")
            + f" (goal <= {GOAL_RATIO:g}x); {r['polls']} polls in {r['window_s']} s, "
            f"CPU {100 * r['cpu_share']:.1f}% of a core"
        )
    if heap is not None:
        lines.append("")
        lines.append(
            f"Python heap (tracemalloc, {heap['communities']} communities): "
            f"{heap['python_heap']['kib_per_community']} KiB per community; by file:"
        )
        lines.extend(f"  {t['kib_per_community']:>7.1f} KiB  {t['file']}" for t in heap["python_heap"]["top"])
    return lines


def run_alone(args: list[str]) -> dict[str, Any]:
    """One size in a process of its own: memory a run before left with the allocator would
    otherwise be reused and read as a smaller figure."""
    command = [sys.executable, "-m", "bench.communities", "--alone", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def alone(plan: Plan, count: int, *, trace: bool, in_step: bool) -> None:
    sampler_cpu = await sampler_cpu_per_second()
    with tempfile.TemporaryDirectory() as tmp:
        figures = await one_size(plan, count, sampler_cpu, Path(tmp), trace=trace, in_step=in_step)
    figures["sampler_cpu_per_s"] = round(sampler_cpu, 4)
    print(json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", help="comma-separated community counts")
    parser.add_argument("--trace", type=int, help="communities in a tracemalloc run (0: none)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--alone", action="store_true", help=argparse.SUPPRESS)  # one size, in this process
    parser.add_argument("--in-step", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.sizes:
        plan = dataclasses.replace(plan, sizes=tuple(int(s) for s in args.sizes.split(",")))
    if args.alone:
        traced = bool(args.trace)
        asyncio.run(alone(plan, args.trace or plan.sizes[0], trace=traced, in_step=args.in_step))
        return
    trace = plan.trace if args.trace is None else args.trace
    mode = ["--quick"] if args.quick else []
    runs = [[*mode, "--sizes", str(count)] for count in plan.sizes]
    if plan.in_step:
        runs.append([*mode, "--sizes", str(plan.in_step), "--in-step"])
    results: list[dict[str, Any]] = []
    for run in runs:
        results.append(run_alone(run))
        if not args.json:
            print(f"  ({' '.join(run)}: {json.dumps(results[-1])})", flush=True)
    heap = run_alone([*mode, "--trace", str(trace)]) if trace else None
    report({"sizes": results, "heap": heap}, lines_for(results, heap))


if __name__ == "__main__":
    main()
