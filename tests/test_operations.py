"""Operations: `check`, `health`, `sync`, logging without secrets, and whole runs in a real
subprocess (signals, exit codes), with Discord and Sonoran faked on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from bot.__main__ import main
from bot.config import Settings, load_settings
from bot.logs import setup_logging
from bot.preflight import Check, run_checks, state_check

from .doubles.discord_fakes import GUILD_ID, ChannelFault, FakeDiscord
from .doubles.fake_cad import API_KEY, COMMUNITY_ID, FakeCad
from .doubles.fake_gateway import SEND_MESSAGES, FakeGateway, guild_payload, role, text_channel
from .helpers import DISCORD_TOKEN, make_settings

ROOT = Path(__file__).resolve().parent.parent
FEED_CHANNEL = 4242


@pytest.fixture
async def gateway(discord_api: FakeDiscord) -> AsyncIterator[FakeGateway]:
    fake = FakeGateway(guild_payload([text_channel(FEED_CHANNEL)]))
    discord_api.serve_gateway(await fake.start())
    yield fake
    await fake.close()


def settings_for(cad: FakeCad, **overrides: object) -> Settings:
    overrides.setdefault("feeds", [{"server_id": 1, "channel_id": FEED_CHANNEL}])
    return make_settings(cad.url, 2, **overrides)  # type: ignore[arg-type]


def lines(checks: list[Check]) -> str:
    return "\n".join(c.line() for c in checks)


# --- check ---------------------------------------------------------------------------------------


async def test_check_all_ok(cad: FakeCad, gateway: FakeGateway) -> None:
    checks = await run_checks(settings_for(cad))
    report = lines(checks)
    assert all(c.ok for c in checks), report
    assert [c.name for c in checks] == [
        "sonoran key",
        "sonoran servers",
        "state file",
        "discord token",
        f"feed channel {FEED_CHANNEL}",
    ]
    assert "plan PLUS (3)" in report and "#dispatch-feed in Test RP: can post, embed and edit" in report


async def test_check_bad_sonoran_key(cad: FakeCad, gateway: FakeGateway, api_version: int) -> None:
    settings = make_settings(
        cad.url, api_version, sonoran={"api_key": "wrong-key-value-123"}, feeds=[{"channel_id": FEED_CHANNEL}]
    )
    checks = await run_checks(settings)
    bad = checks[0]
    assert (bad.name, bad.ok, bad.fatal) == ("sonoran key", False, True)
    assert "sonoran.api_key" in bad.fix and "wrong-key-value-123" not in lines(checks)
    assert checks[-1].ok  # the Discord part is still checked


async def test_check_plan_and_servers(cad: FakeCad, gateway: FakeGateway) -> None:
    cad.plan = 2
    checks = await run_checks(settings_for(cad, feeds=[{"server_id": 7, "channel_id": FEED_CHANNEL}]))
    report = lines(checks)
    assert "PROBLEM sonoran plan: plan STANDARD leaves out: /calls, /note, /close, autocomplete and the feed" in report
    assert "PROBLEM sonoran servers: server id(s) [7] are not in the CAD (it has: 1, 2)" in report


async def test_check_says_boards_and_alerts_need_plus_and_what_the_cad_answered(
    cad: FakeCad, gateway: FakeGateway, api_version: int
) -> None:
    boards, alerts = [{"channel_id": FEED_CHANNEL}], [{"channel_id": FEED_CHANNEL + 1}]
    answer = "GET /v2/general/version answered version" if api_version == 2 else "GET_VERSION answered"
    report = lines(await run_checks(make_settings(cad.url, api_version, boards=boards, alerts=alerts)))
    assert "ok      sonoran plan (units): unit boards and panic alerts read the units list, which needs Plus" in report
    assert f"{answer} 3" in report
    cad.plan = 2
    report = lines(await run_checks(make_settings(cad.url, api_version, boards=boards, alerts=alerts)))
    assert "PROBLEM sonoran plan (units): unit boards and panic alerts read the units list, which needs Plus" in report
    assert f"{answer} 2" in report and "STANDARD" in report and "remove [[boards]] and [[alerts]]" in report
    report = lines(await run_checks(make_settings(cad.url, api_version, feeds=[{"channel_id": FEED_CHANNEL}])))
    assert "sonoran plan (units)" not in report  # no board, no alert: nothing to say


async def test_check_rejected_token(cad: FakeCad, discord_api: FakeDiscord) -> None:
    discord_api.valid_token = "the-real-token"
    checks = await run_checks(settings_for(cad))
    assert "PROBLEM discord token: Discord rejected the token" in lines(checks)


async def test_check_missing_channel_permissions(cad: FakeCad, discord_api: FakeDiscord) -> None:
    gateway = FakeGateway(guild_payload([text_channel(FEED_CHANNEL, deny=SEND_MESSAGES)]))
    discord_api.serve_gateway(await gateway.start())
    try:
        report = lines(await run_checks(settings_for(cad)))
    finally:
        await gateway.close()
    assert f"PROBLEM feed channel {FEED_CHANNEL}: #dispatch-feed in Test RP: missing Send Messages" in report
    assert "grant those permissions" in report


async def test_check_invisible_channel(cad: FakeCad, gateway: FakeGateway) -> None:
    report = lines(await run_checks(settings_for(cad, feeds=[{"channel_id": 999}])))
    assert "PROBLEM feed channel 999: the bot cannot see this channel" in report


async def test_check_names_board_and_alert_channels_by_their_keys(cad: FakeCad, gateway: FakeGateway) -> None:
    settings = settings_for(
        cad,
        feeds=[],
        boards=[{"channel_id": FEED_CHANNEL}],
        alerts=[{"channel_id": 998, "ping_role_id": 5}],
    )
    report = lines(await run_checks(settings))
    assert f"ok      unit board channel {FEED_CHANNEL}: #dispatch-feed in Test RP: can post, embed and edit" in report
    assert "PROBLEM panic alert channel 998: the bot cannot see this channel" in report
    assert "or fix alerts[].channel_id" in report
    assert "PROBLEM ping role 5: cannot check it: its channel is not visible" in report


async def test_check_cad_down(gateway: FakeGateway) -> None:
    checks = await run_checks(make_settings("http://127.0.0.1:9", 2, sonoran={"timeout_seconds": 0.5}))
    assert not checks[0].ok and not checks[0].fatal and "did not answer" in checks[0].detail


# --- health, logging -------------------------------------------------------------------------------


def write_config(tmp_path: Path, cad_url: str, *, api_key: str = API_KEY, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[discord]
token = "{DISCORD_TOKEN}"

[sonoran]
community_id = "{COMMUNITY_ID}"
api_key = "{api_key}"
api_url = "{cad_url}"
poll_seconds = 5
timeout_seconds = 2

[sonoran.rate_limits]
get_calls = 60

[state]
path = "{tmp_path / "state.sqlite3"}"
health_file = "{tmp_path / "last-poll"}"

[[feeds]]
channel_id = {FEED_CHANNEL}
{extra}
""")
    return path


def test_health_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    assert main(["health", "--config", str(config)]) == 1
    assert "missing" in capsys.readouterr().err
    (tmp_path / "last-poll").write_text(f"{time.time() - 5:.0f}\n")
    assert main(["health", "--config", str(config)]) == 0
    (tmp_path / "last-poll").write_text(f"{time.time() - 500:.0f}\n")
    assert main(["--config", str(config), "health"]) == 1
    capsys.readouterr()
    # the loop alive while the CAD fails: healthy, and the CAD's state said
    (tmp_path / "last-poll").write_text(f"{time.time() - 5:.0f} cad failing: server 1\n")
    assert main(["health", "--config", str(config)]) == 0
    assert "(cad failing: server 1)" in capsys.readouterr().out


def test_config_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "configuration file not found" in capsys.readouterr().err


def test_config_path_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SONORAN_BOT_CONFIG", str(tmp_path / "from-env.toml"))
    assert main(["health"]) == 2
    assert "from-env.toml" in capsys.readouterr().err


def test_log_lines_never_carry_secrets() -> None:
    stream = io.StringIO()
    handler = setup_logging("DEBUG", [DISCORD_TOKEN, API_KEY], stream=stream)
    try:
        log = logging.getLogger("tests.secrets")
        log.info("token=%s key=%s", DISCORD_TOKEN, API_KEY.upper())
        try:
            raise RuntimeError(f"boom {API_KEY}")
        except RuntimeError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "[redacted]" in text and "Traceback" in text
    assert DISCORD_TOKEN not in text and API_KEY.lower() not in text.lower()


# --- whole runs in a subprocess ---------------------------------------------------------------------


async def run_offline(
    config: Path, env: dict[str, str], *, quiet: bool = False, extra: Sequence[str] = ()
) -> asyncio.subprocess.Process:
    """`python -m bot run --config CONFIG [EXTRA...]` in its own process, Discord faked as `env`
    says (see tests/doubles/offline_run.py); its log is readable unless `quiet`."""
    output = asyncio.subprocess.DEVNULL if quiet else asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "doubles" / "offline_run.py"),
        "run",
        "--config",
        str(config),
        *extra,
        stdout=output,
        stderr=output,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        cwd=str(ROOT),
    )


async def start_bot(
    config: Path, *, token: str = DISCORD_TOKEN, discord_down: bool = False
) -> asyncio.subprocess.Process:
    env = {"FAKE_DISCORD_CHANNELS": str(FEED_CHANNEL), "FAKE_DISCORD_TOKEN": token}
    if discord_down:
        env["FAKE_DISCORD_DOWN"] = "1"  # every request to Discord is refused
    return await run_offline(config, env)


async def read_until(process: asyncio.subprocess.Process, text: str, seconds: float = 20) -> str:
    """Reads the child's log until `text` shows up; returns what was read."""
    assert process.stderr is not None
    seen = ""
    async with asyncio.timeout(seconds):
        while text not in seen:
            line = await process.stderr.readline()
            assert line, f"the bot exited before logging {text!r}:\n{seen}"
            seen += line.decode()
    return seen


async def wait_for(condition: Callable[[], object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_second_bot_on_the_same_state_file_stops_in_one_line(cad: FakeCad, tmp_path: Path) -> None:
    config = write_config(tmp_path, cad.url)
    first = await start_bot(config)
    try:
        await read_until(first, "connected to Discord as dispatch-bot")
        second = await start_bot(config)
        _, stderr = await asyncio.wait_for(second.communicate(), 30)
        lines = [line for line in stderr.decode().splitlines() if "not starting" in line]
        assert second.returncode == 1, stderr.decode()
        (line,) = lines
        assert str(tmp_path / "state.sqlite3") in line and f"pid {first.pid}" in line
        assert "Traceback" not in stderr.decode()
        state = await state_check(load_settings(config))  # `check` beside the running bot says so, fine
        assert state.ok and f"in use by a running bot ({first.pid})" in state.detail
    finally:
        first.kill()
        await first.wait()
    # the kernel dropped the lock with the process: a bot starts again at once
    again = await start_bot(config)
    await read_until(again, "connected to Discord as dispatch-bot")
    again.send_signal(signal.SIGTERM)
    await asyncio.wait_for(again.communicate(), 30)
    assert again.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_cleanly(cad: FakeCad, tmp_path: Path, sig: signal.Signals) -> None:
    call_id = cad.add_911("Anna", "Grove St", "Fire")
    process = await start_bot(write_config(tmp_path, cad.url))
    early = await read_until(process, "connected to Discord as dispatch-bot")
    await wait_for(lambda: "get_calls" in cad.operations() and (tmp_path / "last-poll").exists())
    process.send_signal(sig)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = early + stderr.decode()
    assert process.returncode == 0, log
    assert "signal received: shutting down" in log and "stopped cleanly" in log
    assert "connected to Discord as dispatch-bot" in log
    assert "channel posts: 1" in stdout.decode()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # state written, database closed
        rows = db.execute("SELECT call_id, message_id FROM posts").fetchall()
    assert len(rows) == 1 and rows[0][0] == call_id and rows[0][1] is not None
    assert DISCORD_TOKEN not in log + stdout.decode() and API_KEY not in log + stdout.decode()


async def test_bad_cad_key_refuses_to_start(cad: FakeCad, tmp_path: Path) -> None:
    process = await start_bot(write_config(tmp_path, cad.url, api_key="definitely-wrong-key-1234"))
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 1
    assert f"not starting: the CAD at sonoran.api_url {cad.url}: The CAD rejected the API key" in log
    assert "sonoran.api_key" in log
    assert "definitely-wrong-key-1234" not in log and DISCORD_TOKEN not in log


async def test_rejected_discord_token_exits_1(cad: FakeCad, tmp_path: Path) -> None:
    process = await start_bot(write_config(tmp_path, cad.url), token="another-token")
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and "Discord rejected the token" in stderr.decode()


async def test_unreachable_cad_is_not_fatal_and_secrets_stay_out_of_logs(tmp_path: Path) -> None:
    cad = FakeCad()
    await cad.start()
    try:
        for _ in range(6):
            cad.fail_next("get_version", status=503, body=f"upstream error for key {API_KEY}")
        for _ in range(9):
            cad.fail_next("get_calls", status=500, body=f"Internal error, key={API_KEY} token={DISCORD_TOKEN}")
        process = await start_bot(write_config(tmp_path, cad.url))
        # one request a cycle, the second after a 10 s backoff (poll_seconds 5)
        await wait_for(lambda: cad.operations().count("get_calls") >= 2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await cad.close()
    log = stderr.decode() + stdout.decode()
    assert process.returncode == 0, log
    assert f"sonoran key: the CAD at sonoran.api_url {cad.url} did not answer" in log
    assert "CAD server 1: CadUnavailable" in log
    assert DISCORD_TOKEN not in log and API_KEY not in log and API_KEY.upper() not in log


def test_sync_command(tmp_path: Path, discord_api: FakeDiscord, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    assert main(["sync", "--guild", "333333333333333333", "--config", str(config)]) == 0
    assert "registered 11 commands in guild 333333333333333333" in capsys.readouterr().out
    (guild_body,) = discord_api.sent("PUT", r"/applications/\d+/guilds/333333333333333333/commands$")
    assert sorted(c["name"] for c in guild_body) == [
        "911",
        "attach",
        "calls",
        "close",
        "detach",
        "lookup",
        "note",
        "panic",
        "remove911",
        "status",
        "units",
    ]
    assert main(["sync", "--config", str(config)]) == 0
    assert len(discord_api.sent("PUT", r"/applications/\d+/commands$")) == 1
    assert not (tmp_path / "state.sqlite3").exists()  # registering commands opens no state file


def test_sync_builds_no_engine_and_binds_no_port(
    tmp_path: Path, discord_api: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    """With push (and the websocket) on and a running bot holding the port, `sync` only registers
    the commands: no listener, no SignalR session, no feed loop, exit 0."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        push = f'[push]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nwebsocket = true\n'
        config = write_config(tmp_path, "http://127.0.0.1:1", extra=push)
        assert main(["sync", "--guild", "333333333333333333", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "registered" in out and "Traceback" not in err and "address already in use" not in err.lower()
    assert not (tmp_path / "state.sqlite3").exists()
    assert not (tmp_path / "last-poll").exists()  # no feed loop ran


def test_the_cad_client_imports_without_discord() -> None:
    import subprocess

    probe = "import sys, bot.sonoran; assert 'discord' not in sys.modules and 'bot.config' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT).returncode == 0


def test_python_dash_m_bot_is_the_entry_point(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "bot", "check", "--config", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2 and "configuration file not found" in result.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    ).stdout
    assert "{run,check,sync,health,push-test,demo,invite,keys,cluster}" in help_text


def test_dockerfile_runs_what_the_tests_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tini", "--", "python", "-m", "bot"]' in dockerfile and 'CMD ["run"]' in dockerfile
    # dependencies in a layer of their own, before the code; the final stage holds no source tree
    layers = [
        dockerfile.index(text)
        for text in ("COPY pyproject.toml constraints.txt ./", "pip install -c constraints.txt -r", "COPY bot")
    ]
    assert layers == sorted(layers)
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert len(set(bases)) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", bases[0])  # a patch release
    final = dockerfile[dockerfile.rindex("FROM ") :]
    assert "COPY bot" not in final and "COPY --from=build /opt/venv /opt/venv" in final
    assert "pip uninstall --yes pip setuptools" in final and "pip uninstall --yes pip setuptools" in dockerfile
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK --") :].split("\n\n")[0]
    assert "python" not in healthcheck and "/data/last-poll" in healthcheck  # no Python start-up a minute
    assert "USER bot" in dockerfile and 'VOLUME ["/data"]' in dockerfile
    assert "SONORAN_BOT_STATE__HEALTH_FILE=/data/last-poll" in dockerfile
    pinned = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and line[0] != "#"]
    assert pinned and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", line) for line in pinned)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".venv-lowest", ".hypothesis", "*.egg-info", ".env", "config.toml"} <= set(ignored)


async def test_unreachable_discord_is_retried_and_signal_still_stops(cad: FakeCad, tmp_path: Path) -> None:
    process = await start_bot(write_config(tmp_path, cad.url), discord_down=True)
    early = await read_until(process, "cannot reach Discord (ClientConnectionError); retrying in 5s")
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = early + stderr.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log and "signal received before login: stopped" in log


async def test_unwritable_state_path_is_one_clear_line(cad: FakeCad, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = write_config(tmp_path, cad.url)
    config.write_text(config.read_text().replace(str(tmp_path / "state.sqlite3"), str(blocker / "state.sqlite3")))
    process = await start_bot(config)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 1 and "not starting: " in log and "Traceback" not in log, log


async def test_a_lock_file_that_cannot_be_opened_stops_run_in_one_line(cad: FakeCad, tmp_path: Path) -> None:
    """Without its lock two bots could share one state file: a lock file the bot cannot open (left
    by a run as root; here, as root ourselves, a folder in its place) stops `run`, and `check` says it."""
    config = write_config(tmp_path, cad.url)
    lock = tmp_path / "state.sqlite3.lock"
    lock.mkdir()
    process = await start_bot(config)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    (line,) = [line for line in log.splitlines() if "not starting" in line]
    assert process.returncode == 1 and "Traceback" not in log, log
    assert f"cannot open the lock file {lock}" in line and "chown" in line
    state = await state_check(load_settings(config))
    assert not state.ok and str(lock) in state.detail


# --- stopping at any moment, sync's errors, the CLI ----------------------------------------------------


async def _stop_after(delay: float, config: Path, *, ready: Any = None) -> tuple[int, float, str]:
    """Starts `python -m bot run` for real, sends SIGTERM after `delay` (or once `ready()` holds),
    and returns the exit code, the seconds from the signal to the exit, and the log."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    await asyncio.sleep(delay)
    if ready is not None:
        await wait_for(ready)
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, time.monotonic() - signalled, stderr.decode() + stdout.decode()


async def signal_once_ours(
    config: Path, sig: signal.Signals, marker: str, delay: float, *, cwd: Path = ROOT
) -> tuple[int, float, str]:
    """`python -m bot run`, signalled `delay` s after `marker` shows in its stderr: "import" is
    the moment discord.py has been imported (by our code, after bot/__main__ took the signals;
    `-X importtime` says when), "start" the bot's start-up line. A signal while Python itself is
    still starting is Python's, not ours: never sent. Returns the exit code, the seconds from the
    signal to the exit, and the whole stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "bot", "--config", str(config), "run",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(cwd),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stderr is not None
    seen = ""
    async with asyncio.timeout(30):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, f"the bot exited before {marker!r}:\n{seen}"
            seen += line
            if marker == "import" and line.startswith("import time:") and line.rstrip().endswith(" discord"):
                break
            if marker == "start" and "sonoran-dispatch-bot " in line and " starting: config " in line:
                break
    await asyncio.sleep(delay)
    process.send_signal(sig)
    signalled = time.monotonic()
    _, rest = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, time.monotonic() - signalled, seen + rest.decode()


@pytest.mark.parametrize(("marker", "delay"), [("import", 0), ("start", 0.05), ("start", 0.4), ("start", 1.0)])
async def test_sigterm_while_starting_is_a_clean_exit(cad: FakeCad, tmp_path: Path, marker: str, delay: float) -> None:
    cad.fail_next("get_version", delay=60)  # a CAD that never answers the preflight
    config = write_config(tmp_path, cad.url)
    config.write_text(config.read_text().replace("timeout_seconds = 2", "timeout_seconds = 30"))
    code, seconds, log = await signal_once_ours(config, signal.SIGTERM, marker, delay)
    assert code == 0 and seconds < 2, log
    assert "Traceback" not in log


async def test_sigterm_during_a_hanging_preflight_stops_within_two_seconds(cad: FakeCad, tmp_path: Path) -> None:
    cad.fail_next("get_version", delay=60)
    config = write_config(tmp_path, cad.url)
    config.write_text(config.read_text().replace("timeout_seconds = 2", "timeout_seconds = 30"))
    code, seconds, log = await _stop_after(0, config, ready=lambda: cad.operations() == ["get_version"])
    assert code == 0 and seconds < 2, log
    assert "signal received during the CAD check: stopped" in log and "Traceback" not in log


async def test_login_retries_leave_no_session_open(cad: FakeCad, tmp_path: Path) -> None:
    process = await start_bot(write_config(tmp_path, cad.url), discord_down=True)
    early = await read_until(process, "cannot reach Discord (ClientConnectionError); retrying in 5s")
    early += await read_until(process, "retrying in 10s", seconds=30)
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = early + stderr.decode()
    assert process.returncode == 0 and "Unclosed client session" not in log, log


def test_sync_when_discord_is_unreachable_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    with aioresponses():  # nothing answers: every request to Discord fails to connect
        assert main(["sync", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == "cannot reach Discord (ClientConnectionError); check the network and try again"


def test_sync_without_the_commands_scope_says_how_to_invite(
    tmp_path: Path, discord_api: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    discord_api.sync_fault = ChannelFault(403, 50001, "Missing Access")
    config = write_config(tmp_path, "http://127.0.0.1:1")
    assert main(["sync", "--guild", "333333333333333333", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert "registered" not in captured.out
    assert "without the applications.commands scope" in captured.err
    assert (
        "https://discord.com/oauth2/authorize?client_id=111111111111111111"
        "&scope=bot+applications.commands&permissions=84992" in captured.err
    )


def test_version_and_help(tmp_path: Path) -> None:
    import subprocess

    version = subprocess.run([sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert version.returncode == 0 and version.stdout.startswith("python -m bot 0.")
    sync_help = subprocess.run(
        [sys.executable, "-m", "bot", "sync", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert "Registers the slash commands" in sync_help
    script = Path(sys.executable).parent / "sonoran-dispatch-bot"
    if script.exists():  # installed as the README says: the help names the console script
        usage = subprocess.run([str(script), "--help"], capture_output=True, text=True).stdout
        assert usage.startswith("usage: sonoran-dispatch-bot")


async def test_check_reports_placeholders_ping_role_and_guilds(cad: FakeCad, discord_api: FakeDiscord) -> None:
    gateway = FakeGateway(guild_payload([text_channel(FEED_CHANNEL)], roles=[role(4343, "Dispatch")]))
    discord_api.serve_gateway(await gateway.start())
    try:
        settings = settings_for(
            cad,
            discord={"token": "put-the-bot-token-here", "guild_ids": [int(GUILD_ID), 999]},
            feeds=[{"channel_id": FEED_CHANNEL, "ping_role_id": 4343}],
        )
        report = lines(await run_checks(settings))
    finally:
        await gateway.close()
    assert "PROBLEM configuration placeholders: still the example's values: discord.token" in report
    assert "PROBLEM ping role 4343: @Dispatch is not mentionable and the bot lacks Mention Everyone" in report
    assert "PROBLEM discord guilds: discord.guild_ids: the bot is not in 999" in report


async def test_check_passes_a_mentionable_ping_role(cad: FakeCad, discord_api: FakeDiscord) -> None:
    gateway = FakeGateway(guild_payload([text_channel(FEED_CHANNEL)], roles=[role(4343, "Dispatch", mentionable=True)]))
    discord_api.serve_gateway(await gateway.start())
    try:
        report = lines(await run_checks(settings_for(cad, feeds=[{"channel_id": FEED_CHANNEL, "ping_role_id": 4343}])))
    finally:
        await gateway.close()
    assert "ok      ping role 4343: @Dispatch can be pinged in #dispatch-feed" in report
    assert "placeholders" not in report


async def test_check_verifies_the_audit_channel(cad: FakeCad, gateway: FakeGateway) -> None:
    # (a feed's channel cannot be the audit channel: the gateway here has this one channel)
    report = lines(await run_checks(settings_for(cad, feeds=[], audit={"channel_id": FEED_CHANNEL})))
    assert f"ok      audit channel {FEED_CHANNEL}: #dispatch-feed in Test RP" in report
    report = lines(await run_checks(settings_for(cad, audit={"channel_id": 999})))
    assert "PROBLEM audit channel 999: the bot cannot see this channel" in report and "audit.channel_id" in report


# --- invite -----------------------------------------------------------------------------------------


def test_invite_prints_the_link_with_the_application_id_and_the_permissions_needed(
    tmp_path: Path, discord_api: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1")
    assert main(["invite", "--config", str(config)]) == 0
    link, said = capsys.readouterr().out.splitlines()
    assert link == (
        "https://discord.com/oauth2/authorize?client_id=111111111111111111"
        "&scope=bot+applications.commands&permissions=84992"
    )  # the id Discord's /oauth2/applications/@me gave; View Channel, Send Messages, Embed Links, History
    assert said.startswith("application 111111111111111111; scopes bot and applications.commands; permissions: ")
    assert "View Channel, Send Messages, Embed Links, Read Message History" in said
    assert discord_api.sent("GET", r"/oauth2/applications/@me$")
    # the commands alone need no channel permission
    commands_only = config.read_text().split("[[feeds]]")[0]
    config.write_text(commands_only)
    assert main(["invite", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("&permissions=0")


def test_invite_with_discord_unreachable_reads_the_id_from_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = base64.urlsafe_b64encode(b"222222222222222222").decode().rstrip("=") + ".abc.def"
    config = write_config(tmp_path, "http://127.0.0.1:1")
    config.write_text(config.read_text().replace(DISCORD_TOKEN, token))
    with aioresponses():  # nothing answers
        assert main(["invite", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "client_id=222222222222222222&" in out and "the application id was read from the token" in out
    assert token not in out


def test_invite_with_a_rejected_token_is_one_line(
    tmp_path: Path, discord_api: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    discord_api.valid_token = "another-token"
    assert main(["invite", "--config", str(write_config(tmp_path, "http://127.0.0.1:1"))]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("Discord rejected the token (discord.token)")


def test_the_readme_names_python_first_and_runs_the_tests_as_ci_does() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.index("Python 3.11") < readme.index("```sh")  # before the first command
    (command,) = [line for line in readme.splitlines() if line.endswith("-m pytest")]
    assert command == 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\n.venv/bin/python -m pytest\n" in ci and '-e ".[test,lint]"' in ci  # the same suite, the same way
    for page in ("configuration", "usage", "operations", "performance", "architecture"):
        assert f"(docs/{page}.md)" in readme and (ROOT / "docs" / f"{page}.md").is_file()
    assert 'pip install ".[websocket]"' in readme and "sonoran-dispatch-bot[websocket]" not in readme


def test_the_console_script_is_python_m_bot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed `sonoran-dispatch-bot` runs what `python -m bot` runs: Ctrl-C during check or
    sync is a clean exit there too, not a KeyboardInterrupt traceback."""
    import tomllib

    import bot.__main__ as entry

    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["sonoran-dispatch-bot"]
    assert script.split(" ")[0] == "bot.__main__:console"

    def interrupted() -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(entry, "main", interrupted)
    with pytest.raises(SystemExit) as exit_:
        entry.console()
    assert exit_.value.code == 0


async def test_a_refusal_of_the_version_request_is_said_not_taken_for_a_wrong_address(
    cad: FakeCad, gateway: FakeGateway
) -> None:
    """A 403 from the CAD (or a firewall before it) is the CAD's words, not "this is not the CAD":
    `run` is not stopped for good, and the admin is not sent to change sonoran.api_url."""
    body = '{"title": "Forbidden", "status": 403, "detail": "Community temporarily blocked"}'
    cad.fail_next("get_version", status=403, body=body, content_type="application/problem+json")
    key = (await run_checks(settings_for(cad)))[0]
    assert (key.name, key.ok, key.fatal) == ("sonoran key", False, False)
    assert "refused the version request" in key.detail and "temporarily blocked" in key.detail
    assert "sonoran.api_url to" not in key.fix
