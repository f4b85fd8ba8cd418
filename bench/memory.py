"""Resident memory of a bot that has logged in (Discord faked) and processed 10,000 calls
through its feed (posted, then all answered and edited). The fake CAD runs in its own process;
aioresponses' request log is emptied after every cycle so it does not count against the bot.

    python -m bench.memory [--json]
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
from pathlib import Path

import aiohttp

from bench._common import cad_process, feed_of, logged_in_bot, report, rss_mib

CALLS = 10_000
PER_CYCLE = 1_000


async def main() -> None:
    baseline = rss_mib()
    with tempfile.TemporaryDirectory() as tmp, cad_process() as url:
        async with logged_in_bot(url, Path(tmp) / "state.sqlite3", feeds=[{"server_id": 1, "channel_id": 4242}]) as (
            bot,
            fake,
        ):
            gc.collect()
            logged_in = rss_mib()
            feed = feed_of(bot)
            peak = logged_in
            async with aiohttp.ClientSession() as session:
                for _ in range(CALLS // PER_CYCLE):
                    await (await session.post(f"{url}/_bench/add911", params={"n": str(PER_CYCLE)})).read()
                    await feed.poll_once()  # posts the new ones
                    await (await session.post(f"{url}/_bench/clear")).read()
                    await feed.poll_once()  # edits them: answered/removed
                    fake.forget_history()
                    peak = max(peak, rss_mib())
                    if os.environ.get("BENCH_TRACE"):
                        print(f"  cycle: {rss_mib():.1f} MiB")
            gc.collect()
            after = rss_mib()
            posted = fake.channel_posts
            edited = fake.channel_edits
    report(
        {
            "imports_mib": round(baseline, 1),
            "logged_in_mib": round(logged_in, 1),
            "after_calls_mib": round(after, 1),
            "peak_mib": round(peak, 1),
            "calls": CALLS,
        },
        [
            f"interpreter with the bot's imports: {baseline:.1f} MiB",
            f"after login (Discord faked, cogs loaded, SQLite open): {logged_in:.1f} MiB",
            f"after {CALLS} calls posted ({posted} messages) and edited ({edited} edits): {after:.1f} MiB "
            f"(peak {peak:.1f} MiB, growth {after - logged_in:+.1f} MiB)",
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
