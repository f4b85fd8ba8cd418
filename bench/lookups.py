"""Lookup requests during simulated minutes: 40 members with the lookup role ask a lookup every
second between them (60 a minute, each a new plate, so the cache never answers), through the real
command tree from raw interaction payloads, while the game server's plate reader makes 15 lookups a
minute with the same key and the CAD enforces Sonoran's 30 a minute per key. Time is simulated (the
rate limiters' clock), so ten minutes take seconds. Prints the most lookups the bot sent in any
minute, and whether the game server was ever refused.

    python -m bench.lookups [--json]        (BENCH_LOOKUP_BUDGET=20 for the most the configuration allows)
"""

from __future__ import annotations

import asyncio
import collections
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import logged_in_bot, report
from tests.doubles.discord_fakes import dispatch_interaction, slash
from tests.doubles.fake_cad import API_KEY, FakeCad

MEMBERS = 40
ROLE = 990000000000000001
SECONDS = int(os.environ.get("BENCH_SECONDS", "600"))
BUDGET = int(os.environ.get("BENCH_LOOKUP_BUDGET", "10"))  # sonoran.rate_limits.lookup (at most 20)
GAME_SERVER_EVERY = 4  # seconds between the plate reader's lookups (15 a minute)


def plate_lookup(plate: str, user: str) -> dict[str, Any]:
    payload = slash("lookup", None, roles=[str(ROLE)], user_id=user)
    payload["data"]["options"] = [
        {"name": "plate", "type": 1, "options": [{"name": "plate", "type": 3, "value": plate}]}
    ]
    return payload


async def main() -> None:
    cad = FakeCad()
    url = await cad.start()
    cad.limits["lookup"] = 30  # Sonoran's, per key and minute (the window starts again each minute)
    now = [0.0]
    ours: list[float] = []  # when each of the bot's lookups reached the CAD
    cad.on_request = lambda r: (
        ours.append(now[0]) if r.operation == "lookup" and "fivem" not in r.headers.get("User-Agent", "") else None
    )
    counts: collections.Counter[str] = collections.Counter()
    game_server = {"Authorization": f"Bearer {API_KEY}", "User-Agent": "sonorancad-fivem"}
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            logged_in_bot(
                url,
                Path(tmp) / "state.sqlite3",
                sonoran={"rate_limits": {"lookup": BUDGET}, "poll_seconds": 20},  # the other budgets: their defaults
                lookups={"enabled": True, "role_ids": [ROLE], "cooldown_seconds": 0, "hourly_cap": 10_000},
                clock=lambda: now[0],
            ) as (bot, fake),
            aiohttp.ClientSession() as session,
        ):
            for second in range(SECONDS):
                now[0] = float(second)
                if second % 60 == 0:
                    cad.reset_window()
                if second % GAME_SERVER_EVERY == 0:
                    body = {"plate": f"G{second}", "first": "", "last": "", "mi": "", "types": [2, 3, 4, 5]}
                    async with session.post(f"{url}/v2/general/lookups", json=body, headers=game_server) as answer:
                        counts["game_server"] += 1
                        counts["game_server_refused"] += answer.status == 429
                user = str(500_000_000_000_000_000 + second % MEMBERS)
                await dispatch_interaction(bot, plate_lookup(f"M{second}", user))
                counts["asked"] += 1
                if second % 60 == 59:
                    fake.forget_history()
    await cad.close()
    busiest = max((sum(1 for t in ours if start <= t < start + 60) for start in range(SECONDS)), default=0)
    minutes = SECONDS / 60
    report(
        {
            "simulated_minutes": minutes,
            "lookups_asked_by_members": counts["asked"],
            "lookups_sent_by_the_bot": len(ours),
            "most_sent_in_any_minute": busiest,
            "game_server_lookups": counts["game_server"],
            "game_server_refused": counts["game_server_refused"],
        },
        [
            f"simulated {minutes:g} minutes in {time.perf_counter() - wall:.1f} s of wall time",
            f"members asked {counts['asked']} lookups; the bot sent {len(ours)} "
            f"({len(ours) / minutes:.1f} a minute), at most {busiest} in any 60 s "
            f"(sonoran.rate_limits.lookup = {BUDGET})",
            f"the game server's plate reader beside them: {counts['game_server']} lookups, "
            f"refused {counts['game_server_refused']} (Sonoran allows 30 a minute per key)",
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
