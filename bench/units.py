"""The units room under volume: 10,000 and 100,000 units pushed to the bot's listener as
EVENT_UNIT_LOGIN events (100 to a request, the listener's cap; its per-minute cap is met by moving
its clock a minute on every 3,000 events), then the unit board rendered five times (a status
changes before each), then every unit logged off (100 ids to an event, 100 events to a request),
then the issue's hostile logouts: 30 EVENT_UNIT_LOGOUT events of 95,000 ids each.

Printed per size: resident memory after the logins, after the renders and after the logouts, and
the event loop's lag (how late a 10 ms sleep wakes: max and p99) during the pushes and during the
renders. Each size runs in a process of its own, so one does not inherit the other's heap.
Discord is faked in-process (aioresponses), the CAD is the sandbox CAD over loopback.

    python -m bench.units [--json]
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import ROOT, feed_of, logged_in_bot, percentile, report, rss_mib
from tests.doubles.fake_cad import API_KEY, FakeCad

SIZES = (10_000, 100_000)
PER_REQUEST = 100  # the listener's MAX_EVENTS_PER_REQUEST
PER_MINUTE = 3_000  # its MAX_EVENTS_PER_MINUTE
RENDERS = 5
PATH = "/sonorancad/event"


class Lag:
    """How late the event loop wakes a 10 ms sleep, sampled while a phase runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append(max(0.0, time.perf_counter() - start - 0.01))

    def __enter__(self) -> Lag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def figures(self) -> dict[str, float]:
        values = self.samples or [0.0]
        return {"max_ms": round(max(values) * 1000, 1), "p99_ms": round(percentile(values, 99) * 1000, 1)}


def batches(idents: range, size: int) -> Iterator[range]:
    for start in range(idents.start, idents.stop, size):
        yield range(start, min(start + size, idents.stop))


def login(ident: int) -> dict[str, Any]:
    unit = {"id": ident, "status": 2, "isPanic": False, "location": "Route 68", "aop": "Los Santos"}
    unit["data"] = {"unitNum": f"1A-{ident}", "name": f"Officer {ident}", "department": "LSPD"}
    return {"unit": unit, "isDispatch": False}


async def one_size(count: int) -> dict[str, Any]:
    cad = FakeCad()
    cad_url = await cad.start()
    minute = [0.0]
    figures: dict[str, Any] = {"units": count}
    with tempfile.TemporaryDirectory() as tmp:
        async with logged_in_bot(
            cad_url,
            Path(tmp) / "state.sqlite3",
            boards=[{"server_id": 1, "channel_id": 43}],
            alerts=[{"server_id": 1, "channel_id": 44, "ping_role_id": 45}],
            push={"enabled": True, "host": "127.0.0.1", "port": 0, "path": PATH},
        ) as (bot, fake):
            feed = feed_of(bot)
            listener = bot.intake.listener if bot.intake else None
            assert listener is not None
            listener.events_per_minute, listener.budget_clock = PER_MINUTE, lambda: minute[0]
            url = f"http://127.0.0.1:{listener.bound_port}{PATH}"
            await feed.units.poll_once()  # the (empty) units list: the board may be drawn
            gc.collect()
            figures["start_mib"] = round(rss_mib(), 1)
            refused = 0
            async with aiohttp.ClientSession() as session:

                async def send(kind: str, items: list[dict[str, Any]]) -> None:
                    nonlocal refused
                    body = json.dumps({"key": API_KEY, "type": kind, "data": items})
                    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                        if answer.status != 200:
                            refused += 1
                        await answer.read()

                sent = 0
                with Lag() as pushing:
                    for chunk in batches(range(1, count + 1), PER_REQUEST):
                        if sent and sent % PER_MINUTE == 0:
                            minute[0] += 60.0
                        await send("EVENT_UNIT_LOGIN", [login(i) for i in chunk])
                        sent += len(chunk)
                    await feed.settled()
                figures["push_lag"] = pushing.figures()
                gc.collect()
                figures["after_logins_mib"] = round(rss_mib(), 1)

                render_seconds = []
                with Lag() as rendering:
                    for n in range(RENDERS):
                        minute[0] += 60.0
                        await send("EVENT_UNIT_STATUS", [{"identIds": [n + 1], "status": 3}])
                        start = time.perf_counter()
                        feed.units.hurry_boards()
                        await feed.settled()
                        render_seconds.append(time.perf_counter() - start)
                figures["render_lag"] = rendering.figures()
                figures["render_max_s"] = round(max(render_seconds), 3)
                gc.collect()
                figures["after_renders_mib"] = round(rss_mib(), 1)

                minute[0] += 60.0
                events = [{"identIds": list(chunk)} for chunk in batches(range(1, count + 1), 100)]
                for start in range(0, len(events), PER_REQUEST):
                    minute[0] += 60.0
                    await send("EVENT_UNIT_LOGOUT", events[start : start + PER_REQUEST])
                await feed.settled()
                fake.forget_history()
                gc.collect()
                figures["after_logouts_mib"] = round(rss_mib(), 1)
                roster = feed.units.rosters[1]
                figures["on_board"] = len(roster.units)

                for n in range(30):  # 95,000 ids each, one event a request (about 700 KB, under 1 MiB)
                    minute[0] += 60.0
                    start_id = 10_000_000 + n * 95_000
                    await send("EVENT_UNIT_LOGOUT", [{"identIds": list(range(start_id, start_id + 95_000))}])
                await feed.settled()
                gc.collect()
                figures["after_hostile_logouts_mib"] = round(rss_mib(), 1)
                remembered = [getattr(roster, name, {}) for name in ("_changed_at", "_gone", "_pending")]
                figures["remembered_ids"] = sum(len(entries) for entries in remembered)
                figures["refused_requests"] = refused
    await cad.close()
    return figures


def run_all() -> None:
    results = []
    for count in SIZES:
        command = [sys.executable, "-m", "bench.units", "--size", str(count)]
        output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    lines = []
    for r in results:
        lines += [
            f"{r['units']:,} units pushed ({r['refused_requests']} requests refused):",
            f"  RSS: start {r['start_mib']} MiB, after logins {r['after_logins_mib']} MiB, "
            f"after {RENDERS} board renders {r['after_renders_mib']} MiB, after logouts {r['after_logouts_mib']} MiB, "
            f"after 30 logouts of 95,000 ids {r['after_hostile_logouts_mib']} MiB "
            f"(the roster remembers {r['remembered_ids']:,} ids)",
            f"  event-loop lag while pushing: max {r['push_lag']['max_ms']} ms, p99 {r['push_lag']['p99_ms']} ms",
            f"  event-loop lag while rendering the board: max {r['render_lag']['max_ms']} ms, "
            f"p99 {r['render_lag']['p99_ms']} ms (slowest render and delivery {r['render_max_s']} s)",
        ]
    report({"sizes": results}, lines)


if __name__ == "__main__":
    if "--size" in sys.argv:
        size = int(sys.argv[sys.argv.index("--size") + 1])
        print(json.dumps(asyncio.run(one_size(size))))
    else:
        run_all()
