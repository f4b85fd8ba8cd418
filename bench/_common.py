"""Shared by the benchmarks: a fake CAD in its own process, a bot logged in to fake Discord."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aioresponses import aioresponses  # noqa: E402

from bot.core import DispatchBot  # noqa: E402
from tests import _aiohttp314_shim  # noqa: E402, F401
from tests.discord_fakes import FakeDiscord  # noqa: E402
from tests.helpers import make_settings  # noqa: E402


@contextlib.contextmanager
def cad_process(emergency: int = 0, dispatch: int = 0) -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "cad_server.py"),
            "--emergency",
            str(emergency),
            "--dispatch",
            str(dispatch),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(10)


@contextlib.asynccontextmanager
async def logged_in_bot(cad_url: str, state: Path, **settings: Any) -> AsyncIterator[tuple[DispatchBot, FakeDiscord]]:
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        fake = FakeDiscord(mock)
        fake.install()
        bot = DispatchBot(make_settings(cad_url, 2, state_path=state, **settings), autostart_feed=False)
        await bot.login("bench-token")
        try:
            yield bot, fake
        finally:
            await bot.close()


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
