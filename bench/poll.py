"""CPU cost of one feed cycle (fetch + parse + diff against SQLite + decide and send posts), for
10 to 10,000 calls in the CAD's list, with nothing new and with 10% new; and the size of the
state file after 100,000 calls. The fake CAD runs in its own process; Discord is aioresponses.

    python -m bench.poll [--json]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench._common import cad_process, feed_of, logged_in_bot, report
from bot.posts import Post, PostKind, PostState, content_version, stored_data
from bot.sonoran import EmergencyCall
from bot.store import Store

CHANNEL = 4242
SIZES = (10, 100, 1_000, 10_000)


async def cycle_cost(size: int, workdir: Path) -> tuple[float, float, float, int]:
    with cad_process(emergency=size) as url:
        feeds = [{"server_id": 1, "channel_id": CHANNEL}]
        async with logged_in_bot(url, workdir / f"state-{size}.sqlite3", feeds=feeds) as (bot, fake):
            feed = feed_of(bot)
            start = time.process_time()
            await feed.poll_once()  # first start: posts every call
            first = time.process_time() - start
            rounds = 5 if size <= 1_000 else 3
            idle = []
            for _ in range(rounds):
                fake.reset_requests()
                start = time.process_time()
                await feed.poll_once()
                idle.append(time.process_time() - start)
            busy = []
            async with aiohttp.ClientSession() as session:
                for _ in range(rounds):
                    await (await session.post(f"{url}/_bench/add911", params={"n": str(max(1, size // 10))})).read()
                    fake.reset_requests()
                    start = time.process_time()
                    await feed.poll_once()
                    busy.append(time.process_time() - start)
            return first, min(idle), min(busy), fake.channel_posts


async def state_file_size(workdir: Path, calls: int = 100_000) -> tuple[float, float]:
    path = workdir / "state-100k.sqlite3"
    store = await Store.open(path)
    now = time.time()
    call = {
        "callId": 0,
        "isEmergency": True,
        "caller": "Firstname Lastname",
        "location": "1234 Route 68, Sandy Shores",
        "description": "Two-vehicle collision, one person trapped, fire visible",
        "metaData": {"postal": "1234"},
    }
    for start in range(0, calls, 1_000):
        batch = []
        for call_id in range(start, start + 1_000):
            model = EmergencyCall.model_validate({**call, "callId": call_id})
            version = content_version(PostState.ANSWERED, stored_data(PostKind.CALL_911, model, None))
            batch.append(
                Post(
                    CHANNEL,
                    1,
                    PostKind.CALL_911,
                    call_id,
                    f"b{call_id // 10}",
                    call_id % 10,
                    10**17 + call_id,
                    PostState.ANSWERED,
                    model,
                    None,
                    version,
                    version,
                    now,
                    now,
                    False,
                )
            )
        await store.add_batch(batch)
    await store.checkpoint()
    full = path.stat().st_size / 2**20
    pruned = await store.forget_ended(now + 1)  # what the 7-day pruning leaves: nothing of these
    await store.vacuum()
    await store.close()
    return full, path.stat().st_size / 2**20 if pruned else full


async def main() -> None:
    figures: dict[str, object] = {}
    lines = [
        "feed cycle CPU time (bot process only; the CAD runs in another process)",
        f"{'calls':>7} {'first start':>12} {'nothing new':>12} {'10% new':>10} {'per call (idle)':>16}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for size in SIZES:
            first, idle, busy, _ = await cycle_cost(size, workdir)
            figures[f"calls_{size}"] = {
                "first_ms": round(first * 1e3, 2),
                "idle_ms": round(idle * 1e3, 2),
                "ten_percent_new_ms": round(busy * 1e3, 2),
                "idle_us_per_call": round(idle / size * 1e6, 2),
            }
            lines.append(
                f"{size:>7} {first * 1e3:>10.1f}ms {idle * 1e3:>10.1f}ms {busy * 1e3:>8.1f}ms "
                f"{idle / size * 1e6:>13.1f}µs"
            )
        full, pruned = await state_file_size(workdir)
    figures["state_file_mib_100k"] = round(full, 2)
    figures["state_file_mib_pruned"] = round(pruned, 3)
    lines.append(f"state file after 100,000 calls seen: {full:.1f} MiB; after pruning ended calls: {pruned:.2f} MiB")
    report(figures, lines)


if __name__ == "__main__":
    asyncio.run(main())
