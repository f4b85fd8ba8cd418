"""Settings: one TOML file, then environment overrides, then validation.

`load_settings(path)` is the only entry point. Every problem in the file is reported at once, in
one `ConfigError` that names the file and each wrong key, never as a pydantic traceback, and
never with a secret's value in it.
"""

from __future__ import annotations

import contextvars
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SONORAN_BOT_"
CONFIG_ENV_VAR = "SONORAN_BOT_CONFIG"
DEFAULT_CONFIG_PATH = "config.toml"
SECRET_KEYS = frozenset({"token", "api_key"})

# The TOML file of the load in progress; a context variable rather than a class attribute so
# that two loads (in tests, or `check` next to `run`) never see each other's file.
_toml_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("toml_file", default=None)


class ConfigError(Exception):
    """The configuration cannot be used; the message is meant for the admin, as is."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiscordSettings(_Section):
    token: SecretStr = Field(description="bot token; prefer SONORAN_BOT_DISCORD__TOKEN")
    guild_ids: list[int] = Field(default_factory=list)


class RateLimits(_Section):
    """Requests per minute the bot allows itself, per operation.

    Sonoran counts v2 limits per API key, and the community's game server spends the same key:
    the FiveM resource polls the call list once a minute, so the bot keeps 4 of the 5.
    """

    get_calls: int = Field(4, ge=1)
    call_911: int = Field(10, ge=1)
    remove_911: int = Field(10, ge=1)
    add_call_note: int = Field(60, ge=1)
    close_call: int = Field(20, ge=1)
    get_version: int = Field(10, ge=1)
    get_servers: int = Field(10, ge=1)


class SonoranSettings(_Section):
    community_id: str = Field(min_length=1)
    api_key: SecretStr
    api_url: AnyHttpUrl = AnyHttpUrl("https://api.sonorancad.com")
    api_version: Literal[1, 2] = 2
    server_id: int = Field(1, ge=1)
    poll_seconds: float = Field(20, ge=5)
    timeout_seconds: float = Field(10, gt=0, le=120)
    rate_limits: RateLimits = Field(default_factory=RateLimits)

    @field_validator("api_version", mode="before")
    @classmethod
    def _version_from_env(cls, value: Any) -> Any:
        # environment variables arrive as strings; "2" must mean 2
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @property
    def base_url(self) -> str:
        return str(self.api_url).rstrip("/")


class CommandSettings(_Section):
    dispatcher_role_ids: list[int] = Field(default_factory=list)
    caller_role_ids: list[int] = Field(default_factory=list)
    cooldown_911_seconds: float = Field(60, ge=0)


class StateSettings(_Section):
    path: Path = Path("data/state.sqlite3")
    # touched after every successful feed cycle; `python -m bot health` (the container
    # HEALTHCHECK) reads its age
    health_file: Path | None = None


CallKind = Literal["emergency", "civil"]
ALL_CALL_KINDS: tuple[CallKind, ...] = ("emergency", "civil")


class FeedSettings(_Section):
    server_id: int = Field(1, ge=1)
    channel_id: int = Field(gt=0)
    calls: list[CallKind] = Field(default_factory=lambda: list(ALL_CALL_KINDS))
    ping_role_id: int = Field(0, ge=0)
    dispatch: bool = False  # also post dispatch calls, edited through their life


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    discord: DiscordSettings
    sonoran: SonoranSettings
    commands: CommandSettings = Field(default_factory=CommandSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    feeds: list[FeedSettings] = Field(default_factory=list)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: explicit arguments, then the environment, then the TOML file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _toml_file.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _poll_fits_rate_budget(self) -> Settings:
        servers = len(self.feed_server_ids) or 1
        budget = self.sonoran.rate_limits.get_calls
        per_minute = servers * 60 / self.sonoran.poll_seconds
        if per_minute > budget:
            minimum = math.ceil(servers * 60 / budget)
            raise ValueError(
                f"sonoran.poll_seconds = {self.sonoran.poll_seconds:g} polls {servers} CAD server(s) "
                f"{per_minute:g} times a minute, over the budget of {budget} "
                f"(sonoran.rate_limits.get_calls; Sonoran allows 5 a minute per key, shared with "
                f"the game server); use poll_seconds >= {minimum}"
            )
        return self

    @property
    def feed_polls_per_window(self) -> int:
        """Call-list requests the feed makes in one minute (the rate-limit window), all servers."""
        return math.ceil(60 / self.sonoran.poll_seconds) * len(self.feed_server_ids)

    @property
    def feed_server_ids(self) -> list[int]:
        """The CAD servers the feed polls, each once, in configuration order."""
        return list(dict.fromkeys(feed.server_id for feed in self.feeds))


def resolve_config_path(path: str | Path | None, environ: dict[str, str]) -> Path:
    if path is not None:
        return Path(path)
    return Path(environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_settings(path: str | Path) -> Settings:
    """Read `path` (TOML), apply `SONORAN_BOT_*` environment overrides and validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: configuration file not found (looked at {path.resolve()}); "
            f"copy config.example.toml there, or pass --config / set {CONFIG_ENV_VAR}"
        )
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)  # parsed here first so that a syntax error names the file
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    token = _toml_file.set(path)
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    finally:
        _toml_file.reset(token)


def format_validation_error(path: Path, exc: ValidationError) -> str:
    problems = exc.errors(include_url=False, include_input=True)
    lines = [f"{path}: {len(problems)} problem(s) in the configuration:"]
    for problem in problems:
        key = _dotted(problem["loc"])
        lines.append(f"  - {key or '(file)'}: {_describe(problem)}")
    return "\n".join(lines)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after[_key_not_blank(), SecretStr]"}:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(problem: Any) -> str:
    kind = problem["type"]
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key (a typo? see config.example.toml for every key)"
    message = str(problem["msg"]).removeprefix("Value error, ")
    loc = problem["loc"]
    secret = bool(loc) and loc[-1] in SECRET_KEYS
    value = problem.get("input")
    if not secret and isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60:
        message += f" (got {value!r})"
    return message
