"""`python -m bot demo`: the real bot against the sandbox CAD, with nothing set up; in the terminal
without a token, and in a (fake) Discord channel with one, slash commands included."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest
from aioresponses import aioresponses

from bot.__main__ import main
from bot.sandbox.demo import Demo

from .doubles.discord_fakes import CHANNEL_ID, FakeDiscord, dispatch_interaction, slash
from .doubles.fake_gateway import FakeGateway, guild_payload, text_channel
from .test_dispatch import last_reply
from .test_operations import ROOT, wait_for


def test_the_demo_with_nothing_set_up_shows_posts_created_and_then_edited(tmp_path: Path) -> None:
    env = {key: value for key, value in __import__("os").environ.items() if not key.startswith("SONORAN_BOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--for", "9"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**env, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "the bot posts to this terminal" in out
    assert "posted message" in out and "🚨 EMERGENCY 911 call #1001" in out and "[Remove]" in out
    assert "edited message" in out and "EMERGENCY 911 call #1001 (answered)" in out
    assert "Dispatch call #1003: Structure fire, persons trapped" in out and "[Note] [Close]" in out
    assert "Units on duty · CAD server 1" in out and "• 1-A-12 · Officer Reyes · LSPD" in out
    assert out.rstrip().endswith("demo: over") and "Traceback" not in result.stderr


async def test_the_demo_with_a_token_runs_in_the_channel_with_its_slash_commands(discord_api: FakeDiscord) -> None:
    gateway = FakeGateway(guild_payload([text_channel(int(CHANNEL_ID))]))
    discord_api.serve_gateway(await gateway.start())
    try:
        async with Demo(io.StringIO(), token="fake-token", channel_id=int(CHANNEL_ID), pace=0.2) as demo:
            await wait_for(lambda: len(discord_api.channel_messages(CHANNEL_ID)) >= 3)
            await wait_for(lambda: discord_api.sent("PUT", r"/guilds/\d+/commands$"))  # synced to the server
            assert demo.bot is not None
            await dispatch_interaction(demo.bot, slash("911", {"location": "Legion Square", "description": "Man down"}))
            filed = [c for c in demo.cad.servers[1].emergency.values() if c["location"] == "Legion Square"]
            assert len(filed) == 1  # filed in the sandbox CAD
            assert last_reply(discord_api)["content"].startswith(f"Emergency call #{filed[0]['callId']} filed")
        await asyncio.sleep(0)
    finally:
        await gateway.close()
    titles = [e["title"] for m in discord_api.channel_messages(CHANNEL_ID) for e in m["embeds"]]
    assert any("911 call #1001" in title for title in titles)
    assert "Units on duty · CAD server 1" in titles
    assert discord_api.refused == []  # the strict double took every message


def test_the_demo_in_a_channel_with_discord_unreachable_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SONORAN_BOT_DISCORD__TOKEN", "a-real-looking-token")
    monkeypatch.chdir(tmp_path)
    with aioresponses(passthrough=["http://127.0.0.1"]):  # nothing else answers: Discord cannot be reached
        assert main(["demo", "--channel", "4242", "--for", "5"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.strip().splitlines() if "] [INFO   ] " not in line]  # one line
    assert line.startswith("demo: cannot reach Discord (ClientConnectionError): the network, not the token")
    assert "a-real-looking-token" not in err
