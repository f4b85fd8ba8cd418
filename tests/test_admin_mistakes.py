"""The mistakes an admin makes in the first hour, each answered with one line that names the
problem and the fix, in `check` and in `run` alike (issue: the first hour)."""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from bot import ConfigError, load_settings
from bot.__main__ import main
from bot.cli import EXIT_PROBLEM, run
from bot.intake import listener as listener_module
from bot.preflight import push_checks, run_checks, served_check, sonoran_preflight, start_checks
from bot.services import sonoran_client
from bot.store import StateFileError, Store
from bot.version import version

from .conftest import BotFactory
from .doubles.fake_cad import FakeCad
from .doubles.loopback import free_port
from .helpers import DISCORD_TOKEN, make_settings
from .test_config import MINIMAL, write
from .test_operations import ROOT, signal_once_ours, start_bot, write_config

FEED = "\n[[feeds]]\nchannel_id = 4242\n"


def test_a_config_path_that_is_a_directory_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "config.toml"
    folder.mkdir()  # what Docker makes when the host file to mount is missing
    with pytest.raises(ConfigError, match="is a directory, not a configuration file"):
        load_settings(folder, {})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_config_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    path.chmod(0)
    with pytest.raises(ConfigError, match="cannot be read as uid"):
        load_settings(path, {})


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes("\ufeff".encode() + MINIMAL.encode())
    assert load_settings(path, {}).cad.community_id == "mycad"


def test_one_underscore_for_two_is_pointed_out(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match="did you mean SONORAN_BOT_DISCORD__TOKEN"):
        load_settings(path, {"SONORAN_BOT_DISCORD_TOKEN": "x"})


def test_a_push_path_without_its_slash_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[push]\npath = "sonorancad/event"\n')
    with pytest.raises(ConfigError, match="must start with /"):
        load_settings(path, {})


def test_the_audit_channel_cannot_be_a_feed_channel(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "\n[audit]\nchannel_id = 4242\n" + FEED)
    with pytest.raises(ConfigError, match="also a feed's channel_id"):
        load_settings(path, {})


async def test_a_state_path_that_is_a_directory_has_its_own_line(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="is a directory; point state\\.path at a file in it"):
        await Store.open(tmp_path)


async def test_a_cad_that_never_answers_names_sonoran_api_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    settings = make_settings(url, 2)
    async with aiohttp.ClientSession() as session:
        checks, _ = await sonoran_preflight(settings, sonoran_client(session, settings.cad, retry_backoff=0.01))
    (check,) = checks
    assert f"the CAD at sonoran.api_url {url} did not answer" in check.detail and "sonoran.api_url" in check.fix
    assert settings.cad.api_key.get_secret_value() not in check.detail


def test_a_port_below_1024_as_another_user_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "ports below 1024 need root" in listener_module.privileged_port(80)
    assert listener_module.privileged_port(3232) == ""
    settings = make_settings("http://127.0.0.1:1", 2, push={"enabled": True, "port": 80})

    class Refused:
        def __init__(self, *args: Any) -> None:
            pass

        def __enter__(self) -> Refused:
            return self

        def __exit__(self, *args: Any) -> None:
            pass

        def setsockopt(self, *args: Any) -> None:
            pass

        def bind(self, address: Any) -> None:
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket, "socket", Refused)
    (check,) = push_checks(settings)
    assert not check.ok and "ports below 1024 need root" in check.detail and check.fix == "change push.port"


def _without_pysignalr(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pysignalr"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


async def test_a_websocket_without_its_extra_stops_run_before_anything_is_asked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cad: FakeCad
) -> None:
    _without_pysignalr(monkeypatch)
    settings = make_settings(cad.url, 2, push={"enabled": True, "websocket": True, "port": 0})
    (check,) = start_checks(settings)
    assert check.fatal and "pysignalr is not installed" in check.detail
    with caplog.at_level(logging.ERROR):
        assert await run(settings) == EXIT_PROBLEM
    assert "not starting: push websocket: push.websocket = true, but pysignalr is not installed" in caplog.text
    assert cad.operations() == []  # neither the CAD nor Discord was asked anything


async def test_run_with_the_examples_placeholders_stops_with_checks_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cad: FakeCad
) -> None:
    text = (ROOT / "config.example.toml").read_text().replace("https://api.sonorancad.com", cad.url)
    path = tmp_path / "config.toml"
    path.write_text(text)
    with caplog.at_level(logging.ERROR):
        assert await run(load_settings(path, {})) == EXIT_PROBLEM
    assert "not starting: configuration placeholders: still the example's values: discord.token" in caplog.text
    assert cad.operations() == []


@pytest.mark.parametrize(("marker", "delay"), [("import", 0), ("start", 0), ("start", 0.05), ("start", 0.3)])
async def test_ctrl_c_while_starting_is_a_clean_exit(tmp_path: Path, cad: FakeCad, marker: str, delay: float) -> None:
    config = write_config(tmp_path, cad.url)
    code, _, err = await signal_once_ours(config, signal.SIGINT, marker, delay)
    log = "\n".join(line for line in err.splitlines() if not line.startswith("import time:"))
    assert code == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log


async def test_run_says_once_that_a_ping_role_would_notify_nobody(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(feeds=[{"server_id": 1, "channel_id": 4242, "ping_role_id": 77}])
    with caplog.at_level(logging.WARNING, logger="bot.core"):
        await bot.on_ready()
        await bot.on_ready()  # READY again after a reconnect: not said again
    said = [r.getMessage() for r in caplog.records if "ping role 77" in r.getMessage()]
    assert len(said) == 1 and "feed channel 4242" in said[0], said


@pytest.mark.parametrize("api_version", [1, 2])
async def test_run_refuses_an_api_url_that_answers_but_is_not_the_cad_while_discord_is_down(
    cad: FakeCad, tmp_path: Path, api_version: int
) -> None:
    config = write_config(tmp_path, cad.url + "/api/v2")
    config.write_text(config.read_text().replace("poll_seconds = 5", f"poll_seconds = 5\napi_version = {api_version}"))
    settings = load_settings(config, {})
    async with aiohttp.ClientSession() as session:
        (check,), _ = await sonoran_preflight(settings, sonoran_client(session, settings.cad))
    assert check.fatal and check.detail.startswith(f"sonoran.api_url {cad.url}/api/v2 answers, but not as the Sonoran")
    process = await start_bot(config, discord_down=True)  # Discord's login would be retried for ever
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == EXIT_PROBLEM, log
    assert f"not starting: {check.detail} -> {check.fix}" in log  # check's line, at once
    assert "without any path (https://api.sonorancad.com" in check.fix
    assert "cannot reach Discord" not in log and "Traceback" not in log


async def test_start_up_says_who_it_is_in_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cad: FakeCad
) -> None:
    config = write_config(
        tmp_path,
        cad.url,
        extra='[[alerts]]\nchannel_id = 77\n\n[push]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n',
    )
    config.write_text(config.read_text().replace(DISCORD_TOKEN, "put-the-bot-token-here"))  # stops right after
    with caplog.at_level(logging.INFO, logger="bot"):
        assert await run(load_settings(config, {}), config=config) == EXIT_PROBLEM
    said = [r for r in caplog.records if r.name == "bot" and r.levelno == logging.INFO and "starting" in r.message]
    (line,) = [r.getMessage() for r in said]
    assert line.startswith(f"sonoran-dispatch-bot {version()} starting: config {config.resolve()}; ")
    assert f"Sonoran API v2 at {cad.url}" in line
    assert "serves 1 feed (channel 4242), 0 unit boards, 1 panic alert channel, push listener on 127.0.0.1:0" in line
    assert "\n" not in line and "put-the-bot-token-here" not in line


# --- messages that give the fix: one line naming the key and the fix ----------------------------------


def _problem_lines(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ or {})
    return [line for line in str(info.value).splitlines() if line.startswith("  - ")]


@pytest.mark.parametrize("table", ["feeds", "boards", "alerts"])
def test_one_bracket_for_two_says_so(tmp_path: Path, table: str) -> None:
    (line,) = _problem_lines(write(tmp_path, MINIMAL + f"\n[{table}]\nchannel_id = 4242\n"))
    fix = f"written [{table}], one table; each entry is a [[{table}]] table, with two brackets on each side"
    assert line == f"  - {table}: {fix}"


def test_a_url_without_https_says_how_to_write_it(tmp_path: Path) -> None:
    text = MINIMAL.replace('api_key = "file-key-SECRET"', 'api_key = "file-key-SECRET"\napi_url = "api.sonorancad.com"')
    (line,) = _problem_lines(write(tmp_path, text))
    assert line == '  - sonoran.api_url: the URL needs its https:// in front: api_url = "https://api.sonorancad.com"'


@pytest.mark.parametrize("number", ["12345678901234567890", "1.5e3", "0x1F"])
def test_a_token_that_toml_reads_as_a_number_says_quote_it(tmp_path: Path, number: str) -> None:
    (line,) = _problem_lines(write(tmp_path, MINIMAL.replace('"file-token-SECRET"', number)))
    assert line == '  - discord.token: TOML read it as a number: put the value in quotes (token = "...")'
    assert number not in line


@pytest.mark.parametrize(
    "link",
    [
        "https://discord.com/channels/111111111111111111/222222222222222222",
        "https://ptb.discord.com/channels/111111111111111111/222222222222222222/333333333333333333",  # a message's
        "<https://discordapp.com/channels/111111111111111111/222222222222222222/>",
    ],
)
def test_a_channel_pasted_as_its_link_is_taken(tmp_path: Path, link: str) -> None:
    text = MINIMAL + (
        f'\n[audit]\nchannel_id = "{link}"\n'.replace("222222222222222222", "444444444444444444")
        + "".join(f'\n[[{table}]]\nchannel_id = "{link}"\n' for table in ("feeds", "boards", "alerts"))
    )
    settings = load_settings(write(tmp_path, text), {})
    assert settings.feeds[0].channel_id == settings.boards[0].channel_id == 222222222222222222
    assert settings.alerts[0].channel_id == 222222222222222222 and settings.audit.channel_id == 444444444444444444
    from_env = load_settings(write(tmp_path, MINIMAL + FEED), {"SONORAN_BOT_FEEDS__0__CHANNEL_ID": link})
    assert from_env.feeds[0].channel_id == 222222222222222222


def test_a_channel_that_is_neither_an_id_nor_a_link_says_how_to_get_one(tmp_path: Path) -> None:
    (line,) = _problem_lines(write(tmp_path, MINIMAL + '\n[[feeds]]\nchannel_id = "#dispatch"\n'))
    assert line.startswith("  - feeds[0].channel_id: a channel's id, a number: in Discord (Developer Mode on)")
    assert "Copy Channel ID" in line and "https://discord.com/channels/<server>/<channel>" in line


def test_check_with_nothing_to_post_in_says_what_to_add() -> None:
    settings = make_settings("http://127.0.0.1:1", 2, feeds=[])
    check = served_check(settings)
    assert check is not None and check.ok and check.warning  # said, not counted: commands alone are a choice
    assert check.line() == (
        "warning configuration: no [[feeds]], [[boards]] or [[alerts]]: the bot posts nothing, it only answers "
        "slash commands\n        -> add a [[feeds]] table with channel_id = the id of the channel for the calls "
        "(see config.example.toml)"
    )
    assert served_check(make_settings("http://127.0.0.1:1", 2, alerts=[{"channel_id": 5}])) is None


async def test_check_lists_the_warning_with_the_rest(cad: FakeCad, tmp_path: Path) -> None:
    with aioresponses(passthrough=["http://127.0.0.1"]):  # Discord cannot be reached
        checks = await run_checks(make_settings(cad.url, 2, feeds=[], state={"path": tmp_path / "s.sqlite3"}))
    assert checks[0].name == "sonoran key" and checks[-1].name == "configuration"
    (token,) = [c for c in checks if c.name == "discord token"]
    assert not token.ok and token.detail == (
        "cannot reach Discord (ClientConnectionError): the network, not the token (it was not checked)"
    )
    assert token.fix == "check this machine's connection to discord.com (DNS, firewall, proxy) and run check again"


def test_health_without_a_health_file_says_which_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, MINIMAL)
    assert main(["health", "--config", str(config)]) == EXIT_PROBLEM
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("health: state.health_file is not set") and 'health_file = "data/last-poll"' in line
