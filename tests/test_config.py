from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from bot import ConfigError, load_settings
from bot.__main__ import main
from bot.config import with_dotenv

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
[discord]
token = "file-token-SECRET"

[sonoran]
community_id = "mycad"
api_key = "file-key-SECRET"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_example_config_loads_with_every_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.example.toml", path)
    settings = load_settings(str(path))
    assert settings.cad.api_version == 2 and settings.cad.poll_seconds == 20
    assert settings.cad.timeout_seconds == 10 and settings.cad.rate_limits.get_calls == 4
    assert settings.commands.cooldown_911_seconds == 60
    assert settings.feeds[0].calls == ["emergency", "civil"] and settings.feeds[0].ping_role_id == 0


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.cad.base_url == "https://api.sonorancad.com"
    assert settings.cad.server_id == 1 and settings.feeds == []
    assert settings.state.path == Path("data/state.sqlite3")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONORAN_BOT_DISCORD__TOKEN", "env-token")
    monkeypatch.setenv("SONORAN_BOT_SONORAN__API_KEY", "env-key")
    monkeypatch.setenv("SONORAN_BOT_SONORAN__API_VERSION", "1")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.discord.token.get_secret_value() == "env-token"
    assert settings.cad.api_key.get_secret_value() == "env-key"
    assert settings.cad.api_version == 1 and settings.cad.community_id == "mycad"


def test_secrets_may_come_only_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONORAN_BOT_DISCORD__TOKEN", "env-token")
    monkeypatch.setenv("SONORAN_BOT_SONORAN__API_KEY", "env-key")
    text = '[sonoran]\ncommunity_id = "c"\n'
    assert load_settings(write(tmp_path, text)).cad.api_key.get_secret_value() == "env-key"


def test_local_http_url_accepted(tmp_path: Path) -> None:
    text = MINIMAL + 'api_url = "http://127.0.0.1:8080/"\n'
    assert load_settings(write(tmp_path, text)).cad.base_url == "http://127.0.0.1:8080"


def test_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value) and str(tmp_path) in str(info.value)


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config.toml: not valid TOML.*line 2"):
        load_settings(write(tmp_path, "[discord]\ntoken = \n"))


def test_every_problem_reported_at_once_without_secrets(tmp_path: Path) -> None:
    text = """
[discord]
token = "tok-SECRET"
guild_id = [1]

[sonoran]
community_id = "c"
api_version = 3
poll_seconds = 1

[[feeds]]
channel_id = "abc"
calls = ["emergency", "fire"]

[[feeds]]
server_id = 2
"""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    report = str(info.value)
    assert report.startswith(f"{tmp_path / 'config.toml'}: ")
    assert "discord.guild_id: unknown key" in report
    assert "sonoran.api_key: missing required key" in report
    assert "sonoran.api_version: Input should be 1 or 2" in report
    assert "sonoran.poll_seconds: Input should be greater than or equal to 5" in report
    assert "feeds[0].channel_id: a channel's id, a number" in report
    assert "feeds[0].calls[1]: Input should be 'emergency' or 'civil'" in report
    assert "feeds[1].channel_id: missing required key" in report
    assert "tok-SECRET" not in report
    assert "Traceback" not in report


def test_typo_with_secret_value_does_not_echo_it(tmp_path: Path) -> None:
    text = MINIMAL + 'apikey = "typo-SECRET-value"\n'
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert "sonoran.apikey: unknown key" in str(info.value) and "typo-SECRET-value" not in str(info.value)


def test_poll_interval_over_rate_budget(tmp_path: Path) -> None:
    text = MINIMAL + "poll_seconds = 10\n\n[[feeds]]\nchannel_id = 1\n\n[[feeds]]\nserver_id = 2\nchannel_id = 2\n"
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert "sonoran.poll_seconds = 10 polls 2 CAD server(s) 12 times a minute" in str(info.value)
    assert "poll_seconds >= 30" in str(info.value)


def test_blank_api_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sonoran.api_key: must not be empty"):
        load_settings(write(tmp_path, MINIMAL.replace("file-key-SECRET", " ")))


# --- the environment ----------------------------------------------------------------------------------


def test_an_empty_variable_does_not_blank_the_file(tmp_path: Path) -> None:
    # a compose file's `SONORAN_BOT_DISCORD__TOKEN: ${TOKEN}` passes "" when the host has no TOKEN
    environ = {"SONORAN_BOT_DISCORD__TOKEN": "", "SONORAN_BOT_SONORAN__API_KEY": "  "}
    settings = load_settings(write(tmp_path, MINIMAL), environ)
    assert settings.discord.token.get_secret_value() == "file-token-SECRET"
    assert settings.cad.api_key.get_secret_value() == "file-key-SECRET"


@pytest.mark.parametrize("value", ["123,456", " 123 , 456 ", "[123, 456]"])
def test_lists_from_the_environment_take_commas_or_json(tmp_path: Path, value: str) -> None:
    environ = {"SONORAN_BOT_DISCORD__GUILD_IDS": value, "SONORAN_BOT_COMMANDS__DISPATCHER_ROLE_IDS": "7"}
    settings = load_settings(write(tmp_path, MINIMAL), environ)
    assert settings.discord.guild_ids == [123, 456] and settings.commands.dispatcher_role_ids == [7]


def test_feeds_from_the_environment(tmp_path: Path) -> None:
    text = MINIMAL + "\n[[feeds]]\nchannel_id = 1\n"
    environ = {"SONORAN_BOT_FEEDS__0__CHANNEL_ID": "42", "SONORAN_BOT_FEEDS__1__CHANNEL_ID": "43"}
    settings = load_settings(write(tmp_path, text), {**environ, "SONORAN_BOT_FEEDS__1__CALLS": "civil"})
    assert [(f.channel_id, f.calls) for f in settings.feeds] == [(42, ["emergency", "civil"]), (43, ["civil"])]
    whole = {"SONORAN_BOT_FEEDS": '[{"channel_id": 5, "ping_role_id": 9}]'}
    assert [(f.channel_id, f.ping_role_id) for f in load_settings(write(tmp_path, text), whole).feeds] == [(5, 9)]


def test_a_bad_list_variable_names_the_variable_and_the_form(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL), {"SONORAN_BOT_FEEDS": "123,456"})
    assert str(info.value).startswith("SONORAN_BOT_FEEDS: expected a JSON list of tables")
    assert "Traceback" not in str(info.value) and len(str(info.value).splitlines()) == 1


def test_errors_in_values_from_the_environment_name_the_variable(tmp_path: Path) -> None:
    environ = {
        "SONORAN_BOT_DISCORD__GUILD_IDS": "123,abc",
        "SONORAN_BOT_SONORAN__POLL_SECONDS": "fast",
        "SONORAN_BOT_SONORAN__APIKEY": "typo-SECRET",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL), environ)
    report = str(info.value)
    guild_ids = "SONORAN_BOT_DISCORD__GUILD_IDS (environment variable, discord.guild_ids[1])"
    assert f"{guild_ids}: Input should be a valid" in report
    assert "SONORAN_BOT_SONORAN__POLL_SECONDS (environment variable, sonoran.poll_seconds)" in report
    assert "SONORAN_BOT_SONORAN__APIKEY (environment variable, sonoran.apikey): unknown key" in report
    assert "typo-SECRET" not in report


def test_a_blank_token_is_refused_like_a_blank_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"discord.token: must not be empty"):
        load_settings(write(tmp_path, MINIMAL.replace("file-token-SECRET", " ")))


def test_the_process_environment_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONORAN_BOT_DISCORD__GUILD_IDS", "1,2")
    assert load_settings(write(tmp_path, MINIMAL)).discord.guild_ids == [1, 2]


def test_a_dotenv_file_sits_between_the_environment_and_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL + "\n[sonoran.rate_limits]\nget_calls = 4\n")
    (tmp_path / ".env").write_text(
        "# written by compose users\n"
        "SONORAN_BOT_DISCORD__TOKEN=dotenv-token-SECRET\n"
        "export SONORAN_BOT_SONORAN__POLL_SECONDS=30\n"
        'SONORAN_BOT_DISCORD__GUILD_IDS="123,456"\n'
        "SONORAN_BOT_SONORAN__API_VERSION=1\n"
        "OTHER_TOOL_SETTING=ignored\n"
    )
    monkeypatch.chdir(tmp_path)
    environ, from_dotenv = with_dotenv(
        {"SONORAN_BOT_SONORAN__POLL_SECONDS": "40", "SONORAN_BOT_SONORAN__API_VERSION": ""}
    )
    settings = load_settings(path, environ, dotenv_names=from_dotenv)
    assert settings.discord.token.get_secret_value() == "dotenv-token-SECRET"  # .env over the file
    assert settings.cad.poll_seconds == 40  # the environment over .env
    assert settings.cad.api_version == 1  # an empty variable is ignored: .env's value stands
    assert settings.discord.guild_ids == [123, 456] and "OTHER_TOOL_SETTING" not in from_dotenv
    assert settings.cad.api_key.get_secret_value() == "file-key-SECRET"  # the file, where neither says


def test_a_bad_value_from_dotenv_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)
    (tmp_path / ".env").write_text("SONORAN_BOT_SONORAN__POLL_SECONDS=fast\n")
    monkeypatch.chdir(tmp_path)
    environ, from_dotenv = with_dotenv({})
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ, dotenv_names=from_dotenv)
    assert "SONORAN_BOT_SONORAN__POLL_SECONDS (.env file, sonoran.poll_seconds)" in str(info.value)


def test_the_command_line_reads_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, MINIMAL)
    (tmp_path / ".env").write_text(f"SONORAN_BOT_STATE__HEALTH_FILE={tmp_path / 'beat'}\n")
    (tmp_path / "beat").write_text(f"{time.time():.0f}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SONORAN_BOT_STATE__HEALTH_FILE", raising=False)
    assert main(["health", "--config", str(path)]) == 0
    assert "healthy" in capsys.readouterr().out


def test_state_url_picks_the_backend_and_a_bad_one_is_named_without_its_password(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    settings = load_settings(path, {"SONORAN_BOT_STATE__URL": "postgresql://bot:hunter2@db:5432/sonoran"})
    assert settings.state.postgres_url == "postgresql://bot:hunter2@db:5432/sonoran"
    assert "hunter2" not in repr(settings) and settings.state.described() == "postgresql://bot:***@db:5432/sonoran"
    sqlite = load_settings(path, {"SONORAN_BOT_STATE__URL": str(tmp_path / "here.sqlite3")})
    assert (sqlite.state.postgres_url, sqlite.state.path) == (None, tmp_path / "here.sqlite3")
    assert load_settings(path, {}).state.postgres_url is None  # the default: SQLite at state.path
    for bad in ("mysql://bot:hunter2@db/sonoran", "postgresql://bot:hunter2@db:port/sonoran"):
        with pytest.raises(ConfigError) as error:
            load_settings(path, {"SONORAN_BOT_STATE__URL": bad})
        assert "state.url" in str(error.value) and "bot:***@db" in str(error.value)
        assert "hunter2" not in str(error.value)
