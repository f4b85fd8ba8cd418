"""Settings and clients for tests, pointed at a fake CAD on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.config import Settings

from .doubles.fake_cad import API_KEY, COMMUNITY_ID

DISCORD_TOKEN = "MTEx.discord-test-token.SECRETSECRET"
GENEROUS_LIMITS = {
    "get_calls": 1000,
    "call_911": 1000,
    "remove_911": 1000,
    "add_call_note": 1000,
    "close_call": 1000,
    "get_version": 1000,
    "get_servers": 1000,
    "attach_unit": 1000,
    "detach_unit": 1000,
    "get_account": 1000,
    "get_active_units": 2,  # the most the bot may take (Sonoran allows 3 a minute; the game server takes 1)
    "unit_status": 30,  # the most the bot may take (Sonoran's 30 a minute; the game server shares it)
    "unit_panic": 20,
    "lookup": 20,  # the most the bot may take (Sonoran allows 30 a minute; the game server keeps the rest)
}


def make_settings(
    cad_url: str,
    api_version: int = 2,
    *,
    state_path: Path | None = None,
    feeds: list[dict[str, Any]] | None = None,
    commands: dict[str, Any] | None = None,
    sonoran: dict[str, Any] | None = None,
    **sections: Any,
) -> Settings:
    sonoran_section: dict[str, Any] = {
        "community_id": COMMUNITY_ID,
        "api_key": API_KEY,
        "api_url": cad_url,
        "api_version": api_version,
        "poll_seconds": 5,
        "timeout_seconds": 2,
        "rate_limits": GENEROUS_LIMITS,
    }
    sonoran_section.update(sonoran or {})
    values: dict[str, Any] = {
        "discord": {"token": DISCORD_TOKEN, "guild_ids": []},
        "sonoran": sonoran_section,
        "commands": commands or {"cooldown_911_seconds": 60},
        "state": {"path": str(state_path or ":memory:")},
        "feeds": feeds or [],
    }
    values.update(sections)
    return Settings(**values)


ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def helper_process(module: str, *args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """`python -m <module> <args>` from the project's root (a process to SIGKILL for real), with
    the words of the first line it prints; killed at the end if it still runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        yield process, (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
