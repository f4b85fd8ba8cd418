"""Time from a call appearing in the fake CAD to the Discord POST leaving the bot, with the real
feed loop running on a short poll interval. Expect about half an interval plus the cycle's cost.

    python bench/latency.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import logged_in_bot, percentile

from tests.fake_cad import FakeCad

CHANNEL = 4242
INTERVAL = 0.5  # seconds; production uses >= 15 because of Sonoran's budget (see README)
SAMPLES = 60


async def main() -> None:
    cad = FakeCad()
    url = await cad.start()
    latencies: list[float] = []
    in_cycle: list[float] = []
    appeared: dict[int, float] = {}
    cycle_started = [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        async with logged_in_bot(url, Path(tmp) / "state.sqlite3", feeds=[{"server_id": 1, "channel_id": CHANNEL}]) as (
            bot,
            fake,
        ):
            original = fake._post

            def timed_post(url_: Any, **kw: Any) -> Any:
                sent = time.perf_counter()
                result = original(url_, **kw)
                for call_id, at in list(appeared.items()):
                    latencies.append(sent - at)
                    in_cycle.append(sent - cycle_started[0])
                    del appeared[call_id]
                return result

            fake._post = timed_post  # type: ignore[method-assign]
            fake.mock._matches.clear()
            fake.install()
            refresh = bot.board.refresh

            async def timed_refresh(server_id: int, **options: Any) -> Any:
                cycle_started[0] = time.perf_counter()
                return await refresh(server_id, **options)

            bot.board.refresh = timed_refresh  # type: ignore[method-assign]
            feed = bot.get_cog("Feed")
            feed.poll_seconds = INTERVAL  # type: ignore[union-attr]
            bot.autostart_feed = True
            await feed.cog_load()  # type: ignore[union-attr]
            await asyncio.sleep(INTERVAL)
            for _ in range(SAMPLES):
                call_id = cad.add_911()
                appeared[call_id] = time.perf_counter()
                await asyncio.sleep(INTERVAL * 1.37)  # not in step with the poll
            await asyncio.sleep(INTERVAL * 2)
    await cad.close()
    ms = [x * 1e3 for x in latencies]
    print(f"poll interval {INTERVAL * 1e3:.0f} ms, {len(ms)} calls")
    work = [x * 1e3 for x in in_cycle]
    print(
        f"CAD -> Discord POST: p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms"
    )
    print(
        f"of which the bot's own work (GET sent -> POST sent): p50 {percentile(work, 50):.1f} ms, "
        f"p99 {percentile(work, 99):.1f} ms"
    )
    print(
        f"so with the default poll_seconds = 20: p50 ~ {10_000 + percentile(work, 50):.0f} ms, "
        f"worst ~ {20_000 + percentile(work, 99):.0f} ms: the poll interval is the latency"
    )


if __name__ == "__main__":
    asyncio.run(main())
