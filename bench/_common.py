"""Shared by the benchmarks: a fake CAD in its own process, a bot logged in to fake Discord, and
the way figures are printed (`--json`: one JSON object, for regenerating the README's tables)."""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aioresponses import aioresponses

from bot.core import DispatchBot
from bot.feed import FeedEngine
from bot.services import open_services
from tests.doubles import _aiohttp314_shim  # noqa: F401  (before any aioresponses use)
from tests.doubles.discord_fakes import FakeDiscord
from tests.helpers import make_settings

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def cad_process(
    emergency: int = 0, dispatch: int = 0, *, churn: bool = False, communities: int = 1, free_first: bool = False
) -> Iterator[str]:
    """`bench.cad_server` in a process of its own; yields its URL. `communities`: how many it
    serves (`bench.cad_server.community(i)`), each with `emergency` and `dispatch` calls."""
    command = [sys.executable, "-m", "bench.cad_server", "--emergency", str(emergency), "--dispatch", str(dispatch)]
    if churn:
        command.append("--churn")
    if communities > 1:
        command += ["--communities", str(communities)]
    if free_first:
        command.append("--free-first")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(10)


@contextlib.asynccontextmanager
async def logged_in_bot(
    cad_url: str,
    state: Path,
    *,
    clock: Callable[[], float] = time.monotonic,
    autostart_feed: bool = False,
    **settings: Any,
) -> AsyncIterator[tuple[DispatchBot, FakeDiscord]]:
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        fake = FakeDiscord(mock)
        fake.install()
        config = make_settings(cad_url, 2, state_path=state, **settings)
        async with open_services(config, clock=clock) as services:
            bot = DispatchBot(config, services, autostart_feed=autostart_feed)
            await bot.login("bench-token")
            try:
                yield bot, fake
            finally:
                await bot.close()


def feed_of(bot: DispatchBot) -> FeedEngine:
    """The feed engine (benchmarks drive `poll_once` directly)."""
    assert bot.feed is not None, "the Feed cog is not loaded"
    return bot.feed


def rss_mib() -> float:
    """Resident memory now, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def report(figures: dict[str, Any], lines: list[str]) -> None:
    """The lines for a person, or with `--json` on the command line the figures as JSON."""
    if "--json" in sys.argv[1:]:
        print(json.dumps(figures, indent=2, sort_keys=True))
    else:
        print("\n".join(lines))
