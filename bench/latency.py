"""Time from a call appearing in the fake CAD to the Discord POST leaving the bot, with the real
feed loop running on a short poll interval. Expect about half an interval plus the cycle's cost.

    python -m bench.latency [--json]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import feed_of, logged_in_bot, percentile, report
from tests.doubles.fake_cad import FakeCad, Recorded

CHANNEL = 4242
INTERVAL = 0.5  # seconds; production uses >= 15 because of Sonoran's budget (see README)
SAMPLES = 60


async def measure(samples: int = SAMPLES) -> tuple[list[float], list[float]]:
    """Milliseconds from a call appearing in the CAD to its Discord POST, and of those the bot's
    own work (the GET reaching the CAD to the POST leaving the bot), for `samples` calls."""
    cad = FakeCad()
    url = await cad.start()
    latencies: list[float] = []
    in_cycle: list[float] = []
    appeared: dict[int, float] = {}
    cycle_started = [0.0]

    def on_request(request: Recorded) -> None:
        if request.operation == "get_calls":
            cycle_started[0] = time.perf_counter()

    def on_post(message: dict[str, Any]) -> None:
        sent = time.perf_counter()
        for call_id, at in list(appeared.items()):
            latencies.append(sent - at)
            in_cycle.append(sent - cycle_started[0])
            del appeared[call_id]

    cad.on_request = on_request
    with tempfile.TemporaryDirectory() as tmp:
        feeds = [{"server_id": 1, "channel_id": CHANNEL}]
        async with logged_in_bot(url, Path(tmp) / "state.sqlite3", feeds=feeds) as (bot, fake):
            fake.on_post = on_post
            feed = feed_of(bot)
            feed.poll_seconds = INTERVAL  # below the configurable minimum, to measure many cycles
            feed.start_polling()
            await asyncio.sleep(INTERVAL)
            for _ in range(samples):
                call_id = cad.add_911()
                appeared[call_id] = time.perf_counter()
                await asyncio.sleep(INTERVAL * 1.37)  # not in step with the poll
            await asyncio.sleep(INTERVAL * 2)
    await cad.close()
    return [x * 1e3 for x in latencies], [x * 1e3 for x in in_cycle]


async def main() -> None:
    ms, work = await measure()
    report(
        {
            "interval_ms": INTERVAL * 1e3,
            "samples": len(ms),
            "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "bot_work_p50_ms": round(percentile(work, 50), 2),
            "bot_work_p99_ms": round(percentile(work, 99), 2),
        },
        [
            f"poll interval {INTERVAL * 1e3:.0f} ms, {len(ms)} calls",
            f"CAD -> Discord POST: p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
            f"max {max(ms):.0f} ms",
            f"of which the bot's own work (GET at the CAD -> POST sent): p50 {percentile(work, 50):.1f} ms, "
            f"p99 {percentile(work, 99):.1f} ms",
            f"so with the default poll_seconds = 20: p50 ~ {10_000 + percentile(work, 50):.0f} ms, "
            f"worst ~ {20_000 + percentile(work, 99):.0f} ms: the poll interval is the latency",
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
