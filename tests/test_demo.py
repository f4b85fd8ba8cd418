"""`python -m bot demo`: the real bot against the sandbox CAD, with nothing set up; in the terminal
without a token, and in a (fake) Discord channel with one, slash commands included."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aioresponses import aioresponses

from bot.__main__ import main
from bot.sandbox.cad import API_KEY, FakeCad
from bot.sandbox.demo import Demo
from bot.sandbox.timeline import INCIDENTS, Incident, Timeline, on_duty

from .doubles.discord_fakes import CHANNEL_ID, FakeDiscord, dispatch_interaction, slash
from .doubles.fake_gateway import FakeGateway, guild_payload, text_channel
from .test_dispatch import last_reply
from .test_operations import ROOT, wait_for


async def test_the_demo_with_nothing_set_up_shows_posts_created_and_then_edited(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SONORAN_BOT_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--for", "90",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert process.stdout is not None
    out = ""
    async with asyncio.timeout(60):  # until the panic is cleared: the first round's first half
        while "Panic cleared" not in out:
            line = (await process.stdout.readline()).decode()
            assert line, out
            out += line
    process.send_signal(signal.SIGINT)  # Ctrl-C ends it
    rest, err = await asyncio.wait_for(process.communicate(), 30)
    out += rest.decode()
    assert process.returncode == 0, err.decode()
    assert "the bot posts to this terminal" in out
    assert "posted message" in out and "🚨 EMERGENCY 911 call #1001" in out and "[Remove]" in out
    assert "edited message" in out and "EMERGENCY 911 call #1001 (answered)" in out
    assert re.search(r"Status: Received \d\d:\d\d:\d\d · Answered by dispatch \d\d:\d\d:\d\d", out)
    assert "Dispatch call #1003: Structure fire, persons trapped" in out and "[Note] [Close]" in out
    assert "Units: 1-A-12 Officer Reyes, M-40 Medic Shaw" in out  # named, not counted
    assert "Units on duty · CAD server 1" in out and "• 1-A-12 · Officer Reyes · LSPD" in out
    assert "Call: #1005 · Armed robbery, suspects fled" in out, out  # the panic alert names its call
    assert "Traceback" not in err.decode()
    shown = {_as_shown(line) for line in out.splitlines()}
    assert [line for line in readme_sample() if _as_shown(line) not in shown] == []  # the README shows what it prints
    # the log is in a file, never between the lines of a card (the panic's WARNING included)
    named = re.search(r"demo: the bot's log goes to (\S+)", out)
    assert named is not None and "[WARNING]" not in out and "[INFO" not in out
    log, mode, logged = _log_file(named.group(1))
    assert log.parent == tmp_path and log.name.startswith("sonoran-dispatch-demo-") and mode & 0o077 == 0
    assert err == b"" and "unit #31 of CAD server 1 pressed panic" in logged
    # this run's key and a ready configuration for a second terminal: `check` accepts the sandbox's key
    key = re.search(r"this run's key ([\w-]+)\)", out)
    assert key is not None and len(key.group(1)) >= 32 and key.group(1) != API_KEY
    config = out.split("run `python -m bot --config sandbox.toml check`:\n", 1)[1].split("\n\n[", 1)[0]
    settings = tomllib.loads(config)
    assert settings["sonoran"]["api_key"] == key.group(1) and settings["sonoran"]["api_url"].startswith("http://127.")


def _log_file(name: str) -> tuple[Path, int, str]:
    """The demo's log file: its path, its mode and what it holds."""
    path = Path(name)
    return path, path.stat().st_mode, path.read_text()


def _as_shown(line: str) -> str:
    """A line of the demo's output without what changes from run to run (times, port, key, ids, paths)."""
    line = re.sub(r"\d\d:\d\d:\d\d", "HH:MM:SS", line)
    line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
    line = re.sub(r"(this run's key |api_key = \")[\w-]+", r"\1KEY", line)
    line = re.sub(r"message 9\d{17}", "message ID", line)
    return re.sub(r"goes to \S+sonoran-dispatch-demo-\w+\.log", "goes to LOG", line)


def readme_sample() -> list[str]:
    """The README's sample of what the demo prints, without its `[…]` marks."""
    readme = (ROOT / "README.md").read_text()
    sample = readme.split("What it prints", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    return [line for line in sample.splitlines() if line != "[…]"]


def test_each_demo_run_has_its_own_key() -> None:
    assert Demo(io.StringIO()).api_key != Demo(io.StringIO()).api_key


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


async def test_every_call_of_the_demo_keeps_its_own_story() -> None:
    """Two rounds of the script, as the bot receives them: each 911 call's answer, dispatch title,
    notes, units, panic and end belong to the incident its caller reported."""
    received: list[dict[str, Any]] = []

    async def listener(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/event", listener)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cad = FakeCad(api_key="k")
    await cad.start()
    on_duty(cad)
    try:
        await Timeline(cad, f"http://127.0.0.1:{port}/event", "k", pace=0).play(rounds=2)
    finally:
        await cad.close()
        await runner.cleanup()
    by_words = {incident.words: incident for incident in INCIDENTS.values()}
    incident_of_911: dict[int, Incident] = {}
    incident_of_dispatch: dict[int, Incident] = {}
    attached: dict[int, set[int]] = {}  # dispatch call -> units on it
    told: dict[str, list[str]] = {name: [] for name in INCIDENTS}  # what happened to each incident, in order
    for event in received:
        assert event["key"] == "k"
        kind, data = event["type"], event["data"]
        if kind == "EVENT_911":
            incident = by_words[data["call"]["description"]]
            assert (data["call"]["caller"], data["call"]["location"]) == (incident.caller, incident.location)
            incident_of_911[data["call"]["callId"]] = incident
            told[incident.name].append("911")
        elif kind == "EVENT_DISPATCH_NEW":
            call = data["dispatch"]
            incident = incident_of_911[int(call["metaData"]["origin911"])]
            assert (call["title"], call["address"], call["code"]) == (incident.title, incident.location, incident.code)
            incident_of_dispatch[call["callId"]] = incident
            told[incident.name].append("answered")
        elif kind == "EVENT_REMOVE_911":
            for call_id in data["callIds"]:
                incident = incident_of_911[call_id]
                if told[incident.name][-1] != "answered":  # not the answer's own removal: removed unanswered
                    assert not incident.title, f"{incident.name} has a dispatch call to become, not a removal"
                    told[incident.name].append("removed")
        elif kind == "EVENT_DISPATCH_NOTE":
            incident = incident_of_dispatch[data["callId"]]
            assert (data["note"]["label"], data["note"]["content"]) in incident.notes
            told[incident.name].append("note")
        elif kind == "EVENT_DISPATCH_UNIT_ATTACH":
            incident = incident_of_dispatch[data["callId"]]
            assert tuple(data["idents"]) == incident.units
            for units in attached.values():  # nobody is on two calls at once
                assert not units & set(data["idents"])
            attached[data["callId"]] = set(data["idents"])
            told[incident.name].append("units")
        elif kind == "EVENT_UNIT_PANIC" and data["isPanic"]:
            (ident,) = data["identIds"]
            (call_id,) = [call_id for call_id, units in attached.items() if ident in units]
            assert incident_of_dispatch[call_id].panic == ident
            told[incident_of_dispatch[call_id].name].append("panic")
        elif kind == "EVENT_DISPATCH_CLOSED":
            (call_id,) = data["callIds"]
            attached.pop(call_id, None)
            told[incident_of_dispatch[call_id].name].append("closed")
    for name, incident in INCIDENTS.items():
        one_round = (
            ["911", "removed"]
            if not incident.title
            else (["911", "answered", "units", *["note"] * len(incident.notes), "closed"])
        )
        story = [step for step in told[name] if step != "panic"]
        assert story == one_round * 2, (name, told[name])
        assert told[name].count("panic") == (2 if incident.panic else 0)
