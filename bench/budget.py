"""Sonoran requests during a simulated hour: the feed polls every 20 s while 20 members use /calls
and autocomplete heavily and dispatchers file notes and 911 calls. Everything runs through the
real command tree from raw interaction payloads; time is simulated (the call board's and rate
limiters' clocks), so the hour takes seconds. The count must equal the polls plus the writes.

    python -m bench.budget [--json]
"""

from __future__ import annotations

import asyncio
import collections
import os
import tempfile
import time
from pathlib import Path

from bench._common import feed_of, logged_in_bot, report
from tests.doubles.discord_fakes import MANAGE_GUILD, autocomplete, dispatch_interaction, slash
from tests.doubles.fake_cad import FakeCad

MEMBERS = 20
HOUR = int(os.environ.get("BENCH_SECONDS", "3600"))
POLL = 20.0
CALLS_PER_TICK = 1  # /calls per member per poll interval
KEYSTROKES_PER_TICK = 5  # autocomplete requests per member per poll interval


async def main() -> None:
    cad = FakeCad()
    url = await cad.start()
    for i in range(8):
        cad.add_911(f"Caller {i}", "Route 68", "x")
        cad.add_dispatch(f"Call {i}")
    now = [0.0]

    def clock() -> float:
        return now[0]

    counts: collections.Counter[str] = collections.Counter()
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        async with logged_in_bot(
            url,
            Path(tmp) / "state.sqlite3",
            feeds=[{"server_id": 1, "channel_id": 42}],
            sonoran={"poll_seconds": POLL, "rate_limits": {}},
            clock=clock,
        ) as (bot, fake):
            feed = feed_of(bot)
            ticks = int(HOUR / POLL)
            for tick in range(ticks):
                now[0] = tick * POLL
                await feed.poll_once()
                counts["polls"] += 1
                steps = MEMBERS * (CALLS_PER_TICK + KEYSTROKES_PER_TICK) + 2
                step = 0
                for member in range(MEMBERS):
                    user = str(500_000_000_000_000_000 + member)
                    for _ in range(CALLS_PER_TICK):
                        now[0] = tick * POLL + POLL * step / steps
                        step += 1
                        await dispatch_interaction(bot, slash("calls", user_id=user))
                        counts["/calls"] += 1
                    for key in range(KEYSTROKES_PER_TICK):
                        now[0] = tick * POLL + POLL * step / steps
                        step += 1
                        name = ("close", "note", "remove911")[key % 3]
                        await dispatch_interaction(bot, autocomplete(name, "call_id", "Call"[: key % 4]))
                        counts["autocomplete"] += 1
                if tick % 3 == 0:  # once a simulated minute: one note, one 911 call
                    call_id = next(iter(cad.servers[1].active))
                    await dispatch_interaction(
                        bot, slash("note", {"call_id": call_id, "note": "update"}, permissions=MANAGE_GUILD)
                    )
                    user = str(600_000_000_000_000_000 + tick)
                    await dispatch_interaction(bot, slash("911", {"location": "a", "description": "b"}, user_id=user))
                    counts["writes"] += 2
                fake.forget_history()
    await cad.close()
    sent = collections.Counter(cad.operations())
    total = sum(sent.values())
    expected = counts["polls"] + counts["writes"]
    report(
        {
            "simulated_minutes": HOUR // 60,
            "calls_commands": counts["/calls"],
            "autocomplete": counts["autocomplete"],
            "sonoran_requests": total,
            "expected_requests": expected,
            "get_calls_per_minute": round(sent["get_calls"] / (HOUR / 60), 2),
        },
        [
            f"simulated {HOUR // 60} minutes in {time.perf_counter() - wall:.1f} s of wall time",
            f"members' interactions: {counts['/calls']} /calls, {counts['autocomplete']} autocomplete requests",
            f"Sonoran requests: {total} = {dict(sent)}",
            f"feed polls {counts['polls']} + writes {counts['writes']} = {expected}: "
            f"{'EQUAL' if total == expected else 'DIFFERENT'}",
            f"call-list requests per minute: {sent['get_calls'] / (HOUR / 60):.1f} (Sonoran allows 5, shared)",
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
