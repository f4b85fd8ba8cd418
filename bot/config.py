"""Settings: one TOML file, then environment overrides, then validation.

`load_settings(path)` is the only entry point. It builds `Settings` on pydantic-settings' own
sources, ordered in `Settings.settings_customise_sources`: `EnvOverrides` (its `EnvSettingsSource`)
over `TomlFile` (its `TomlConfigSettingsSource`), each extended only where the library lacks
something (named below). Every problem is reported at once, in one
`ConfigError` that names the file and each wrong key (or, for a value that came from the
environment, the variable), never as a pydantic traceback, and never with a secret's value in it.

Environment variables: `SONORAN_BOT_<SECTION>__<KEY>`, `__` for each level. The same variables may
also sit in a `.env` file in the working directory (read by `read_dotenv`, as pydantic-settings'
`DotEnvSettingsSource` reads one). Highest first: the process environment, then `.env`, then the
TOML file. An empty variable is
ignored (a compose file passes `VAR=` for an unset host variable). Lists take JSON or plain
commas (`SONORAN_BOT_DISCORD__GUILD_IDS=123,456`); `[[feeds]]` takes a JSON list of tables
(`SONORAN_BOT_FEEDS='[{"channel_id": 123}]'`) or one key of one entry by its index
(`SONORAN_BOT_FEEDS__0__CHANNEL_ID=123`, index 0 being the file's first `[[feeds]]`).
"""

from __future__ import annotations

import contextvars
import copy
import ipaddress
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

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
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .db.postgres import check_url, is_postgres_url, redact_url

ENV_PREFIX = "SONORAN_BOT_"
CONFIG_ENV_VAR = "SONORAN_BOT_CONFIG"
DEFAULT_CONFIG_PATH = "config.toml"
DOTENV = ".env"  # in the working directory, as compose and 12-factor tools write it
SECRET_KEYS = frozenset({"token", "api_key", "secret_keys", "url"})


class ConfigError(Exception):
    """The configuration cannot be used; the message is meant for the admin, as is."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_blank(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


_CHANNEL_LINK = re.compile(
    r"https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/(?P<channel>\d+)(?:/\d+)?/?"
)


def _channel_id(value: Any) -> Any:
    """A channel's id, or the channel's link as Discord copies it (Copy Link, or a message's link:
    https://discord.com/channels/<server>/<channel>[/<message>]): what admins paste."""
    if isinstance(value, str):
        link = _CHANNEL_LINK.fullmatch(value.strip().strip("<>"))
        if link is not None:
            return int(link.group("channel"))
    return value


def shard_of(guild_id: int, shard_count: int) -> int:
    """The gateway shard that carries a guild: Discord's rule, (id >> 22) % shard_count."""
    return (guild_id >> 22) % shard_count


class DiscordSettings(_Section):
    token: SecretStr = Field(description="bot token; prefer SONORAN_BOT_DISCORD__TOKEN")
    guild_ids: list[int] = Field(default_factory=list)
    # Sharding (hosted mode over many processes): this process runs the shards `shard_ids` of
    # `shard_count` (discord.py's AutoShardedBot). Both unset: one connection, every guild.
    # `python -m bot run --shard-ids 0,1 --shard-count 4` sets them too.
    shard_count: int | None = Field(None, ge=1)
    shard_ids: list[int] | None = None

    _token_not_blank = field_validator("token")(_not_blank)

    @model_validator(mode="after")
    def _shards_fit(self) -> DiscordSettings:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("discord.shard_ids needs discord.shard_count (how many shards in all)")
            wrong = [shard for shard in self.shard_ids if not 0 <= shard < self.shard_count]
            if wrong or not self.shard_ids or len(set(self.shard_ids)) != len(self.shard_ids):
                raise ValueError(
                    f"discord.shard_ids must be distinct numbers from 0 to {self.shard_count - 1} "
                    f"(discord.shard_count = {self.shard_count}); got {self.shard_ids}"
                )
        return self

    @property
    def sharded(self) -> bool:
        return self.shard_count is not None

    def shard_list(self) -> list[int]:
        """The shards this process runs: `shard_ids`, or every shard of `shard_count` when the ids
        are unset; empty when not sharded (one connection that is no shard)."""
        if self.shard_count is None:
            return []
        return sorted(self.shard_ids) if self.shard_ids is not None else list(range(self.shard_count))

    def runs_guild(self, guild_id: int) -> bool:
        """Whether this process's shards carry `guild_id` (`shard_of`)."""
        if self.shard_count is None or self.shard_ids is None:
            return True
        return shard_of(guild_id, self.shard_count) in self.shard_ids


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
    attach_unit: int = Field(10, ge=1)
    detach_unit: int = Field(10, ge=1)
    get_account: int = Field(10, ge=1)
    # The units list allows 3 a minute per key and the game server polls it once a minute: the
    # bot takes 1 by default, 2 at most (units.poll_seconds spreads them over the board's servers).
    get_active_units: int = Field(1, ge=1, le=2)
    # Sonoran allows 30 status and 20 panic writes a minute per key, shared with the game server's
    # own /setstatus and panic commands: the bot takes two thirds by default, all at most.
    unit_status: int = Field(20, ge=1, le=30)
    unit_panic: int = Field(13, ge=1, le=20)
    # Lookups allow 30 a minute per key, and the game server's plate reader and in-game lookups
    # spend the same key: the bot takes 10 by default and never more than LOOKUP_BUDGET_MAX.
    lookup: int = Field(10, ge=1)

    @field_validator("lookup")
    @classmethod
    def _leaves_the_game_server_its_share(cls, value: int) -> int:
        if value > LOOKUP_BUDGET_MAX:
            raise ValueError(
                f"at most {LOOKUP_BUDGET_MAX}: Sonoran allows 30 lookups a minute per API key, and the game "
                f"server (its plate reader, in-game lookups) needs the rest"
            )
        return value


LOOKUP_BUDGET_MAX = 20  # of Sonoran's 30 lookups a minute per key: the game server keeps at least 10
LOOKUP_RECORD_TYPES = frozenset({2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16})  # 7 (characters) always comes


class LookupSettings(_Section):
    """/lookup: name and plate lookups in the CAD's records, off until an admin turns them on."""

    enabled: bool = False
    role_ids: list[int] = Field(default_factory=list)  # members with one of these may look up
    # v2: also members whose linked CAD account has police, dispatch or supervisor rights
    allow_cad_rights: bool = False
    channel_ids: list[int] = Field(default_factory=list)  # empty: any channel
    types: list[int] = Field(
        default_factory=lambda: [2, 3, 4, 5], min_length=1
    )  # warrants, BOLOs, licenses, registrations
    cooldown_seconds: float = Field(10, ge=0)  # between one member's lookups
    hourly_cap: int = Field(30, ge=1)  # lookups one member may make in any hour

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[int]) -> list[int]:
        unknown = sorted(set(value) - LOOKUP_RECORD_TYPES)
        if unknown:
            raise ValueError(
                f"unknown record type(s) {unknown}: use 2 warrants, 3 BOLOs, 4 licenses, 5 registrations, or 8-16 "
                "(characters, 7, always come back)"
            )
        return sorted(set(value))


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

    _key_not_blank = field_validator("api_key")(_not_blank)

    @property
    def base_url(self) -> str:
        return str(self.api_url).rstrip("/")


class CommandSettings(_Section):
    dispatcher_role_ids: list[int] = Field(default_factory=list)
    caller_role_ids: list[int] = Field(default_factory=list)
    cooldown_911_seconds: float = Field(60, ge=0)
    max_open_911_per_user: int = Field(2, ge=0)  # a member's own 911 calls still in the CAD's list; 0 = no limit
    blocked_role_ids: list[int] = Field(default_factory=list)  # members with one of these cannot file 911 calls
    dispatchers_from_cad: bool = False  # v2: a member whose linked CAD account may dispatch is a dispatcher too
    cad_rights_ttl_seconds: float = Field(600, ge=0)  # how long an answer of the CAD about a member is kept


class AuditSettings(_Section):
    channel_id: int = Field(0, ge=0)  # 0 = off; one embed per write made through the bot, and per refusal

    _channel_link = field_validator("channel_id", mode="before")(_channel_id)


class StateSettings(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    path: Path = Path("data/state.sqlite3")
    # None, or a SQLite file path: SQLite (that path, else `path`); a postgresql:// URL: PostgreSQL,
    # each community in a schema of its own (`schema`, else one named from its community id)
    url: str | None = Field(None, repr=False)  # may hold a password: never in a repr or an error
    schema_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,63}$")
    # touched after every successful feed cycle; `python -m bot health` (the container
    # HEALTHCHECK) reads its age
    health_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        check_url(value.strip())  # ValueError, naming the URL without its password
        return value.strip()

    @model_validator(mode="before")
    @classmethod
    def _sqlite_url(cls, data: Any) -> Any:
        url = data.get("url") if isinstance(data, dict) else None
        if isinstance(url, str) and url.strip() and not is_postgres_url(url.strip()) and "://" not in url:
            return {**data, "path": url.strip(), "url": None}  # a SQLite path given as the url
        if isinstance(url, str) and url.strip().lower().startswith("sqlite://"):
            return {**data, "path": url.strip().split("://", 1)[1], "url": None}
        return data

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL server's URL, or None for SQLite at `path`."""
        return self.url

    def described(self) -> str:
        """Where the state is, for messages: the path, or the URL without its password."""
        return str(self.path) if self.url is None else redact_url(self.url)


CallKind = Literal["emergency", "civil"]
ALL_CALL_KINDS: tuple[CallKind, ...] = ("emergency", "civil")


class FeedSettings(_Section):
    server_id: int = Field(1, ge=1)
    channel_id: int = Field(gt=0)
    calls: list[CallKind] = Field(default_factory=lambda: list(ALL_CALL_KINDS))
    ping_role_id: int = Field(0, ge=0)
    dispatch: bool = False  # also post dispatch calls, edited through their life

    _channel_link = field_validator("channel_id", mode="before")(_channel_id)


DEFAULT_STATUS_LABELS = ("UNAVAILABLE", "BUSY", "AVAILABLE", "ENROUTE", "ON_SCENE")  # Sonoran's 0-4


class UnitSettings(_Section):
    """The units half: how often the units list is read, and the community's words for statuses."""

    poll_seconds: float = Field(60, ge=60)  # one units request per server this often, at most once a minute
    status_labels: list[str] = Field(default_factory=lambda: list(DEFAULT_STATUS_LABELS), min_length=1, max_length=25)
    board_edit_seconds: float = Field(5, ge=2, le=60)  # a board is edited at most this often
    # a panic storm: alerts of their own one event (or one minute) may open per alert channel; the
    # rest are listed in one summary alert, which pings once
    max_alerts_per_minute: int = Field(5, ge=1, le=25)
    member_cooldown_seconds: float = Field(10, ge=0)  # between one member's /status (or /panic) that reach the CAD
    member_share: float = Field(0.25, gt=0, le=1)  # of the status (panic) budget one member may use in a minute
    units_cooldown_seconds: float = Field(10, ge=0)  # between one member's /units

    @field_validator("status_labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        labels = [label.strip() for label in value]
        if any(not label or len(label) > 50 for label in labels):
            raise ValueError("each label must be 1 to 50 characters")
        return labels

    @property
    def status_values(self) -> range:
        """The UNIT_STATUS values the bot may send: Sonoran's 0-4, and those the community labelled."""
        return range(max(len(DEFAULT_STATUS_LABELS), len(self.status_labels)))

    def label(self, status: int) -> str:
        """The community's word for a UNIT_STATUS value (an unknown one shows as its number)."""
        if 0 <= status < len(self.status_labels):
            return self.status_labels[status]
        return "OFFLINE" if status == 100 else f"STATUS {status}"


class BoardSettings(_Section):
    """A unit board: one message (or a few) in a channel, edited as units come, go and change."""

    server_id: int = Field(1, ge=1)
    channel_id: int = Field(gt=0)

    _channel_link = field_validator("channel_id", mode="before")(_channel_id)


class AlertSettings(_Section):
    """Panic alerts of one CAD server, posted in a channel with a ping of one role."""

    server_id: int = Field(1, ge=1)
    channel_id: int = Field(gt=0)
    ping_role_id: int = Field(0, ge=0)

    _channel_link = field_validator("channel_id", mode="before")(_channel_id)


class PushSettings(_Section):
    """The real-time feed: Sonoran push events, POSTed by the CAD or forwarded by the FiveM
    resource to `http://host:port{path}` (or `{path}/{server_id}`)."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(3232, ge=0, le=65535)  # 0: any free port (tests)
    path: str = "/sonorancad/event"
    server_id: int | None = Field(None, ge=1)  # the server of events sent to `path`; default sonoran.server_id
    poll_seconds_when_live: float = Field(60, ge=5)  # poll interval while events arrive; polling never stops
    websocket: bool = False  # opt-in: the bot's own SignalR session per feed server (pip extra `websocket`)
    allow_from: list[str] = Field(default_factory=list)  # CIDRs the listener takes connections from; empty: any

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value.strip(), strict=True)
            except ValueError as error:
                try:
                    hint = f"did you mean {ipaddress.ip_network(value.strip(), strict=False)}? "
                except ValueError:
                    hint = ""
                raise ValueError(
                    f"{value!r} is not a network in CIDR form ({error}); {hint}"
                    "write e.g. 203.0.113.0/24, 2001:db8::/32, or one address such as 203.0.113.7"
                ) from None
        return [str(ipaddress.ip_network(value.strip())) for value in values]

    @field_validator("path")
    @classmethod
    def _a_plain_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with / (the path of the listener's URL, e.g. /{value.lstrip('/')})")
        wrong = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._~/-"))})
        if wrong:
            raise ValueError(f"may hold only letters, digits and . _ ~ / - (not {' '.join(map(repr, wrong))})")
        return value.rstrip("/") or "/"

    @model_validator(mode="after")
    def _websocket_needs_push(self) -> PushSettings:
        if self.websocket and not self.enabled:
            raise ValueError("push.websocket = true needs push.enabled = true")
        return self


class HostingSettings(_Section):
    """Hosted mode: one deployment for many communities, each set up inside Discord with /setup.
    The file then holds only what the deployment owns (Discord, state, push, logging)."""

    enabled: bool = False
    # Fernet keys, comma-separated, newest first; prefer SONORAN_BOT_HOSTING__SECRET_KEYS or the file
    secret_keys: SecretStr | None = None
    secret_keys_file: Path | None = None  # a mounted file with one key a line, newest first
    max_communities: int = Field(1000, ge=1)  # /setup cad refuses a new community past this many
    # the public address of the push listener, for /setup show (e.g. https://bot.example.net); by
    # default http://<push.host>:<push.port>
    push_base_url: str | None = None
    # /setup cad takes only public https API URLs unless this is on (a test or a private CAD)
    allow_private_api_urls: bool = False


class ClusterSettings(_Section):
    """Hosted mode with `state.url` on PostgreSQL: the processes sharing it split the communities
    between them by lease (one owner at a time, its polls, websocket and writers)."""

    # a community whose owner died is taken over within lease_seconds + lease_seconds / 3
    lease_seconds: float = Field(15, ge=1.5, le=120)


# What each community sets up with /setup in hosted mode, and so may not be in the file there
COMMUNITY_KEYS = ("sonoran", "feeds", "boards", "alerts", "audit", "commands", "lookups")


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Built by `load_settings` from pydantic-settings' own sources, the environment over the TOML
    file (`EnvOverrides`, `TomlFile`); built in code (`Settings(...)`, the tests and the demo) from
    what is passed only."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_ignore_empty=True
    )

    discord: DiscordSettings
    sonoran: SonoranSettings | None = None  # required unless hosting.enabled; read it as `cad`
    commands: CommandSettings = Field(default_factory=CommandSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    feeds: list[FeedSettings] = Field(default_factory=list)
    push: PushSettings = Field(default_factory=PushSettings)
    units: UnitSettings = Field(default_factory=UnitSettings)
    boards: list[BoardSettings] = Field(default_factory=list)
    alerts: list[AlertSettings] = Field(default_factory=list)
    lookups: LookupSettings = Field(default_factory=LookupSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    hosting: HostingSettings = Field(default_factory=HostingSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # highest priority first: the environment, then the file (set by `load_settings` for the
        # one construction it makes); otherwise only the values passed in
        return _SOURCES.get() or (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _one_community_needs_its_cad(cls, data: Any) -> Any:
        # without hosting, [sonoran] is required: an empty table names each missing key
        if isinstance(data, dict) and data.get("sonoran") is None and not _hosting_on(data.get("hosting")):
            return {**data, "sonoran": {}}
        return data

    @model_validator(mode="after")
    def _hosted_file_holds_no_community(self) -> Settings:
        if not self.hosting.enabled:
            return self
        present = [key for key in COMMUNITY_KEYS if key in self.model_fields_set]
        if present:
            tables = ", ".join(f"[{key}]" for key in present)
            raise ValueError(
                f"hosting.enabled = true, and the file also holds {tables}: in hosted mode each community sets "
                "those up inside Discord with /setup; remove them from the file (or turn hosting off)"
            )
        return self

    @property
    def cad(self) -> SonoranSettings:
        """The community's CAD settings ([sonoran]); a hosted deployment's own settings have none."""
        if self.sonoran is None:
            raise RuntimeError("a hosted deployment's settings hold no [sonoran]: each community has its own")
        return self.sonoran

    @model_validator(mode="after")
    def _audit_is_not_a_feed(self) -> Settings:
        public = [
            ("a feed's", {feed.channel_id for feed in self.feeds}),
            ("a unit board's", {board.channel_id for board in self.boards}),
            ("a panic alert's", {alert.channel_id for alert in self.alerts}),
        ]
        for what, channels in public:
            if self.audit.channel_id and self.audit.channel_id in channels:
                raise ValueError(
                    f"audit.channel_id {self.audit.channel_id} is also {what} channel_id: the audit records "
                    "(who did what, and refusals) would show there; give the audit a channel of its own"
                )
        return self

    @model_validator(mode="after")
    def _units_poll_fits_rate_budget(self) -> Settings:
        servers = len(self.unit_server_ids)
        if self.sonoran is None:
            return self
        budget = self.sonoran.rate_limits.get_active_units
        if servers and servers * 60 / self.units.poll_seconds > budget:
            minimum = math.ceil(servers * 60 / budget)
            raise ValueError(
                f"units.poll_seconds = {self.units.poll_seconds:g} reads the units of {servers} CAD server(s) "
                f"more often than sonoran.rate_limits.get_active_units = {budget} a minute allows (Sonoran allows "
                f"3 a minute per key, and the game server takes 1); use poll_seconds >= {minimum}"
            )
        return self

    @model_validator(mode="after")
    def _poll_fits_rate_budget(self) -> Settings:
        servers = len(self.feed_server_ids) or 1
        if self.sonoran is None:
            return self
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
        return polls_per_window(self.cad.poll_seconds, len(self.feed_server_ids))

    @property
    def push_server_id(self) -> int:
        """The CAD server of events POSTed to `push.path` itself."""
        return self.push.server_id or self.cad.server_id

    @property
    def unit_server_ids(self) -> list[int]:
        """The CAD servers whose units are read: those a board or an alert names, in that order."""
        return list(dict.fromkeys([*(b.server_id for b in self.boards), *(a.server_id for a in self.alerts)]))

    @property
    def event_server_ids(self) -> list[int]:
        """The CAD servers whose push events the bot takes: the feeds', the boards' and the alerts'."""
        return list(dict.fromkeys([*self.feed_server_ids, *self.unit_server_ids]))

    @property
    def clustered(self) -> bool:
        """Hosted mode on PostgreSQL: processes sharing the state split the communities by lease."""
        return self.hosting.enabled and self.state.postgres_url is not None

    @property
    def feed_server_ids(self) -> list[int]:
        """The CAD servers the feed polls, each once, in configuration order."""
        return list(dict.fromkeys(feed.server_id for feed in self.feeds))


def _hosting_on(hosting: Any) -> bool:
    if isinstance(hosting, HostingSettings):
        return hosting.enabled
    if isinstance(hosting, dict):
        value = hosting.get("enabled")
        return value is True or (isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"))
    return False


def polls_per_window(interval: float, servers: int) -> int:
    """The budget rule's one formula: call-list requests in a minute's window when each of `servers`
    is polled every `interval` seconds. The feed reserves that many; members use the rest."""
    return math.ceil(60 / interval) * servers


def resolve_config_path(path: str | Path | None, environ: dict[str, str]) -> Path:
    if path is not None:
        return Path(path)
    return Path(environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


_SOURCES: contextvars.ContextVar[tuple[PydanticBaseSettingsSource, ...] | None] = contextvars.ContextVar(
    "settings_sources", default=None
)


class TomlFile(TomlConfigSettingsSource):
    """The configuration file, read as pydantic-settings reads TOML, with what it lacks: a UTF-8
    byte-order mark accepted, and every problem of the file (unreadable, not UTF-8, not TOML) said
    in one line naming the path."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        path = Path(file_path)
        try:
            return tomllib.loads(path.read_bytes().decode("utf-8-sig"))  # a BOM, as Windows editors write it
        except OSError as exc:
            uid = os.getuid() if hasattr(os, "getuid") else "?"
            raise ConfigError(
                f"{path}: cannot be read as uid {uid} ({exc.strerror or exc}); give that user read access to it"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None


class EnvOverrides(EnvSettingsSource):
    """`SONORAN_BOT_*` variables over the file, as pydantic-settings reads the environment (the
    prefix, `__` between levels, empty values ignored), with what it lacks: comma-separated lists,
    one key of one `[[feeds]]` entry by its index (applied over the file's list), a did-you-mean for
    one underscore written for two, and `origins` (which variable set which key) for the errors."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str], base: dict[str, Any]) -> None:
        self._environ = environ
        self._base = base
        self.origins: dict[tuple[str, ...], str] = {}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return dict(self._environ)  # as given: the names keep their case for the messages

    def __call__(self) -> dict[str, Any]:
        merged, self.origins = apply_environment(self._base, {k: v for k, v in self.env_vars.items() if v})
        return {key: merged[key] for key in {keys[0] for keys in self.origins} if key in merged}


class DotEnvFile(DotEnvSettingsSource):
    """A `.env` file, read as pydantic-settings reads one (python-dotenv's syntax: `KEY=value`,
    quotes, `export`, comments), the names kept as written so that they are applied, and named in
    errors, exactly as the process environment's are."""

    def __init__(self, path: Path) -> None:
        super().__init__(Settings, env_file=path, case_sensitive=True)


def read_dotenv(path: str | Path = DOTENV) -> dict[str, str]:
    """The `SONORAN_BOT_*` variables of a `.env` file (none if there is no file)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        found = DotEnvFile(path).env_vars
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.resolve()}: cannot be read ({exc}); fix or remove the .env file") from None
    return {name: value for name, value in found.items() if name.startswith(ENV_PREFIX) and value is not None}


def with_dotenv(environ: Mapping[str, str], path: str | Path = DOTENV) -> tuple[dict[str, str], frozenset[str]]:
    """The environment as the bot reads it: `.env`'s variables under the process environment's
    (a variable set in both is the process's), and the names that came from the file."""
    dotenv = read_dotenv(path)
    # an empty variable is ignored, as it is over the TOML file: the file's value stands
    merged = {**environ, **dotenv, **{name: value for name, value in environ.items() if value.strip()}}
    return merged, frozenset(name for name in dotenv if merged[name] == dotenv[name])


def load_settings(
    path: str | Path, environ: Mapping[str, str] | None = None, *, dotenv_names: frozenset[str] = frozenset()
) -> Settings:
    """Read `path` (TOML), apply `SONORAN_BOT_*` environment overrides (from `environ`, by
    default the process environment; `with_dotenv` adds a `.env` file's, whose names are
    `dotenv_names`) and validate."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    if path.is_dir():
        raise ConfigError(
            f"{path}: is a directory, not a configuration file (Docker makes one when the file it should mount "
            "is missing on the host); remove it, put the TOML file there, and mount that file"
        )
    if not path.is_file():
        raise ConfigError(
            f"{path}: configuration file not found (looked at {path.resolve()}); "
            f"copy config.example.toml there, or pass --config / set {CONFIG_ENV_VAR} "
            "(to see the bot at work first, with nothing set up: python -m bot demo)"
        )
    toml = TomlFile(Settings, toml_file=path)
    env = EnvOverrides(Settings, environ, toml.toml_data)
    sources = _SOURCES.set((env, toml))
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, env.origins, dotenv_names)) from None
    finally:
        _SOURCES.reset(sources)


def apply_environment(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The TOML data with every non-empty `SONORAN_BOT_*` variable applied over it, and which
    keys (as paths) each variable set."""
    merged = copy.deepcopy(data)
    origins: dict[tuple[str, ...], str] = {}
    variables = [
        (name, tuple(name.removeprefix(ENV_PREFIX).lower().split("__")), value)
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV_VAR and value.strip()
    ]
    for name, keys, value in sorted(variables, key=lambda item: len(item[1])):  # whole lists before items
        if not all(keys):
            raise ConfigError(f"{name}: not a key path (use __ between levels, e.g. SONORAN_BOT_DISCORD__TOKEN)")
        if _annotation_at(keys) is None and (meant := _meant(keys)) is not None:
            raise ConfigError(f"{name}: names no setting; did you mean {meant}? (__ between the section and the key)")
        parsed = _parse_variable(name, value, _annotation_at(keys))
        _set_path(merged, keys, parsed, name)
        origins[keys] = name
    return merged, origins


def _parse_variable(name: str, value: str, annotation: Any) -> Any:
    kind = _container(annotation)
    if kind is None:
        return value  # a scalar: pydantic converts "2", "true", paths and so on
    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError:
            pass
    elif kind is list and not _is_model(typing.get_args(annotation)[0]):
        return [item.strip() for item in text.split(",") if item.strip()]
    example = (
        'a JSON list of tables, e.g. [{"server_id": 1, "channel_id": 123}], or one key per variable, '
        "e.g. SONORAN_BOT_FEEDS__0__CHANNEL_ID=123"
        if kind is list
        else "a JSON object, or one key per variable with __ between levels"
    )
    if kind is list and not _is_model(typing.get_args(annotation)[0]):
        example = "a JSON list or comma-separated values, e.g. 123,456"
    raise ConfigError(f"{name}: expected {example}")


def _container(annotation: Any) -> type | None:
    annotation = _unwrap_optional(annotation)
    if typing.get_origin(annotation) is list:
        return list
    if _is_model(annotation) or typing.get_origin(annotation) is dict:
        return dict
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _meant(keys: tuple[str, ...]) -> str | None:
    """The variable an admin who wrote one underscore for two meant, where that names a setting
    (SONORAN_BOT_DISCORD_TOKEN for SONORAN_BOT_DISCORD__TOKEN)."""
    parts = "__".join(keys).split("_")
    for cut in range(1, len(parts)):
        candidate = ("_".join(parts[:cut]), "_".join(parts[cut:]))
        if all(candidate) and _annotation_at(candidate) is not None:
            return ENV_PREFIX + "__".join(candidate).upper()
    return None


def _annotation_at(keys: tuple[str, ...]) -> Any:
    """The type a key path holds in `Settings`, or None where the path names no field."""
    annotation: Any = Settings
    for key in keys:
        annotation = _unwrap_optional(annotation)
        if typing.get_origin(annotation) is list and key.isdigit():
            annotation = typing.get_args(annotation)[0]
        elif _is_model(annotation) and key in annotation.model_fields:
            annotation = annotation.model_fields[key].annotation
        else:
            return None
    return annotation


def _set_path(data: dict[str, Any], keys: tuple[str, ...], value: Any, name: str) -> None:
    node: Any = data
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        if isinstance(node, list):
            index = int(key) if key.isdigit() else -1
            if not 0 <= index <= len(node):
                raise ConfigError(f"{name}: there is no entry {key} to set (the list has {len(node)})")
            if index == len(node):
                node.append({})
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{name}: {'.'.join(keys[:position])} is not a table")
        if last:
            node[key] = value
        else:
            following = keys[position + 1]
            node = node.setdefault(key, [] if following.isdigit() else {})


def format_validation_error(
    path: Path,
    exc: ValidationError,
    origins: Mapping[tuple[str, ...], str] | None = None,
    dotenv_names: frozenset[str] = frozenset(),
) -> str:
    problems = exc.errors(include_url=False, include_input=True)
    lines = [f"{path}: {len(problems)} problem(s) in the configuration:"]
    for problem in problems:
        key = _dotted(problem["loc"])
        variable = _variable_for(problem["loc"], origins or {})
        source = f"{DOTENV} file" if variable in dotenv_names else "environment variable"
        where = f"{variable} ({source}, {key})" if variable else key or "(file)"
        lines.append(f"  - {where}: {_describe(problem)}")
    return "\n".join(lines)


def _variable_for(loc: tuple[int | str, ...], origins: Mapping[tuple[str, ...], str]) -> str | None:
    """The environment variable that set this key, or a table or list holding it."""
    keys = tuple(str(part) for part in loc)
    for length in range(len(keys), 0, -1):
        if keys[:length] in origins:
            return origins[keys[:length]]
    return None


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).isidentifier():
            continue  # a validator's own step in the path, not a key
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(problem: Any) -> str:
    kind = problem["type"]
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key (a typo? see config.example.toml for every key)"
    loc = problem["loc"]
    value = problem.get("input")
    hint = _the_fix(kind, loc, value)
    if hint is not None:
        return hint
    # our own validators' ValueError: its words, without pydantic's "Value error, " in front
    cause = problem.get("ctx", {}).get("error") if kind == "value_error" else None
    message = str(cause) if isinstance(cause, ValueError) else str(problem["msg"])
    secret = bool(loc) and loc[-1] in SECRET_KEYS
    if not secret and isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60:
        message += f" (got {value!r})"
    return message


LIST_TABLES = ("feeds", "boards", "alerts")


def _the_fix(kind: str, loc: tuple[int | str, ...], value: Any) -> str | None:
    """The first hour's usual slips, each said with its fix (None: pydantic's words will do)."""
    key = str(loc[-1]) if loc else ""
    if kind == "list_type" and len(loc) == 1 and key in LIST_TABLES and isinstance(value, dict):
        return f"written [{key}], one table; each entry is a [[{key}]] table, with two brackets on each side"
    if key == "api_url" and kind.startswith("url") and isinstance(value, str) and "://" not in value:
        return f'the URL needs its https:// in front: api_url = "https://{value.strip().lstrip("/")}"'
    if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'TOML read it as a number: put the value in quotes ({key} = "...")'
    if key.endswith("channel_id") and kind == "int_parsing" and isinstance(value, str):
        return (
            "a channel's id, a number: in Discord (Developer Mode on) right-click the channel > Copy Channel ID, "
            "or paste its link (https://discord.com/channels/<server>/<channel>)"
            + ("" if len(value) > 60 else f" (got {value!r})")
        )
    return None
