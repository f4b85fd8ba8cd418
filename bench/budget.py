"""Sonoran requests during a simulated hour: the feed polls every 20 s while 20 members use /calls
and autocomplete heavily and dispatchers file notes and 911 calls; a unit board and panic alerts
read the units list (at most once a minute) beside the game server, which reads it once a minute
too, with the CAD enforcing Sonoran's 3 a minute on that list. Everything runs through the
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

import aiohttp

from bench._common import feed_of, logged_in_bot, report
from tests.doubles.discord_fakes import MANAGE_GUILD, autocomplete, dispatch_interaction, slash
from tests.doubles.fake_cad import API_KEY, FakeCad

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
    for i in range(30):
        cad.add_unit(100 + i, f"1A-{i:02}", f"Officer {i}")
    cad.limits["get_active_units"] = 3  # Sonoran's limit on the units list, per key and minute
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
            boards=[{"server_id": 1, "channel_id": 43}],
            alerts=[{"server_id": 1, "channel_id": 44, "ping_role_id": 45}],
            sonoran={"poll_seconds": POLL, "rate_limits": {}},
            clock=clock,
        ) as (bot, fake):
            feed = feed_of(bot)
            game_server = {"Authorization": f"Bearer {API_KEY}", "User-Agent": "sonorancad-fivem"}
            session = aiohttp.ClientSession()
            ticks = int(HOUR / POLL)
            for tick in range(ticks):
                now[0] = tick * POLL
                await feed.poll_once()
                counts["polls"] += 1
                if tick % 3 == 0:  # a simulated minute: the CAD's window starts again
                    cad.reset_window()
                    async with session.get(f"{url}/v2/emergency/servers/1/units", headers=game_server) as answer:
                        counts["game_server_units"] += 1
                        counts["game_server_refused"] += answer.status == 429
                    cad.set_panic(100 + tick % 30, tick % 2 == 0)  # the game sets panics through the API
                await feed.units.poll_once()  # asked every tick: the budget lets one a minute through
                counts["units_polls_asked"] += 1
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
            await session.close()
    await cad.close()
    sent = collections.Counter(r.operation for r in cad.requests if "fivem" not in r.headers.get("User-Agent", ""))
    total = sum(sent.values())
    minutes = HOUR / 60
    expected = counts["polls"] + counts["writes"] + int(minutes)  # one units request a minute
    report(
        {
            "simulated_minutes": HOUR // 60,
            "calls_commands": counts["/calls"],
            "autocomplete": counts["autocomplete"],
            "sonoran_requests": total,
            "expected_requests": expected,
            "get_calls_per_minute": round(sent["get_calls"] / minutes, 2),
            "get_calls_per_hour": round(sent["get_calls"] * 60 / minutes),
            "units_requests_per_hour": round(sent["get_active_units"] * 60 / minutes),
            "units_polls_asked": counts["units_polls_asked"],
            "game_server_units_requests": counts["game_server_units"],
            "game_server_refused": counts["game_server_refused"],
        },
        [
            f"simulated {HOUR // 60} minutes in {time.perf_counter() - wall:.1f} s of wall time",
            f"members' interactions: {counts['/calls']} /calls, {counts['autocomplete']} autocomplete requests",
            f"Sonoran requests: {total} = {dict(sent)}",
            f"feed polls {counts['polls']} + writes {counts['writes']} = {expected}: "
            f"{'EQUAL' if total == expected else 'DIFFERENT'}",
            f"call-list requests per minute: {sent['get_calls'] / minutes:.1f} (Sonoran allows 5, shared)",
            f"per hour: call list {sent['get_calls'] * 60 / minutes:.0f}, units list "
            f"{sent['get_active_units'] * 60 / minutes:.0f} (asked {counts['units_polls_asked']} times; "
            "Sonoran allows 3 a minute, shared)",
            f"the game server's units requests beside them: {counts['game_server_units']}, "
            f"refused {counts['game_server_refused']}",
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
