"""Hosted mode's secrets at rest: the master keys, the sealed API keys in the registry (its SQLite
file read as bytes; on PostgreSQL, its rows read column by column), their binding to their row,
rotation, fingerprints, and `keys` on the command line. The registry's tests run on both backends
(tests/pg.py starts a real PostgreSQL server)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from bot import ConfigError, load_settings
from bot.__main__ import main
from bot.config import FeedSettings, HostingSettings, StateSettings
from bot.hosting.checks import hosting_checks
from bot.hosting.keys_cli import rotate
from bot.hosting.models import CommunityOptions, GuildConfig
from bot.hosting.registry import KeyInUse, Registry, push_digest
from bot.hosting.secrets import MasterKeyError, SecretBox, SecretMismatch, master_keys
from bot.preflight import run_checks
from bot.store import StateFileError, Store

from .doubles.discord_fakes import FakeDiscord
from .pg import state_on

API_KEY = "sonoran-api-key-8f2d1c0b7a6e5d4c3b2a1908"
OTHER_KEY = "sonoran-api-key-other-0123456789abcdef"
API_URL = "https://api.sonorancad.com"
OLD, NEW = SecretBox.generate_key(), SecretBox.generate_key()


def box(*keys: str) -> SecretBox:
    return SecretBox(list(keys) or [OLD])


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> StateSettings:
    """Where the test's registry is: a new file, or a new schema on the test server."""
    return state_on(request, tmp_path / "hosted.sqlite3")


@pytest.fixture
async def registry(state: StateSettings) -> AsyncIterator[Registry]:
    opened = await Registry.open_state(state, box())
    yield opened
    await opened.close()


async def raw(state: StateSettings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """A statement on the registry's tables from outside the bot (as someone with the file or the
    database would run it); `$1`... placeholders."""
    if state.postgres_url is None:
        with sqlite3.connect(state.path) as db:
            rows = [tuple(row) for row in db.execute(sql.replace("$1", "?1").replace("$2", "?2"), params)]
        db.close()
        return rows
    connection = await asyncpg.connect(state.postgres_url)
    try:
        await connection.execute(f'SET search_path TO "{state.schema_name}"')
        return [tuple(row) for row in await connection.fetch(sql, *params)]
    finally:
        await connection.close()


async def cipher(state: StateSettings, tenant_id: str) -> bytes:
    ((sealed,),) = await raw(state, "SELECT key_cipher FROM tenants WHERE id = $1", tenant_id)
    return bytes(sealed)


def file_bytes(path: Path) -> bytes:
    """The state file and its write-ahead log, as a thief would copy them."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


# --- the box -------------------------------------------------------------------------------------


def test_sealed_values_open_for_their_owner_only() -> None:
    sealed = box().seal("tenant-a", API_KEY)
    assert API_KEY.encode() not in sealed and box().open("tenant-a", sealed) == API_KEY
    with pytest.raises(SecretMismatch, match="belongs to another row") as refused:
        box().open("tenant-b", sealed)
    assert API_KEY not in str(refused.value)


def test_a_wrong_master_key_says_so_without_any_key() -> None:
    sealed = box(OLD).seal("tenant-a", API_KEY)
    with pytest.raises(MasterKeyError, match="cannot be decrypted with the master keys") as wrong:
        box(NEW).open("tenant-a", sealed)
    assert not isinstance(wrong.value, SecretMismatch)
    assert all(secret not in str(wrong.value) for secret in (API_KEY, OLD, NEW))


def test_a_malformed_master_key_is_named_by_its_position_only() -> None:
    not_a_key = "this-is-not-a-fernet-key"
    with pytest.raises(MasterKeyError) as bad:
        SecretBox([NEW, not_a_key, OLD])
    assert "key 2 of 3 is not a Fernet key (44 url-safe base64 characters)" in str(bad.value)
    assert all(secret not in str(bad.value) for secret in (not_a_key, OLD, NEW))


def test_master_keys_come_from_the_setting_or_the_file(tmp_path: Path) -> None:
    assert master_keys(HostingSettings(enabled=True, secret_keys=SecretStr(f" {NEW} , {OLD} "))) == [NEW, OLD]
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# newest first\n{NEW}\n\n  {OLD}  \n")
    assert master_keys(HostingSettings(enabled=True, secret_keys_file=keys_file)) == [NEW, OLD]
    with pytest.raises(MasterKeyError, match="python -m bot keys generate") as missing:
        master_keys(HostingSettings(enabled=True))
    assert "SONORAN_BOT_HOSTING__SECRET_KEYS" in str(missing.value)
    with pytest.raises(MasterKeyError, match=f"hosting.secret_keys_file {tmp_path / 'absent'} cannot be read"):
        master_keys(HostingSettings(enabled=True, secret_keys_file=tmp_path / "absent"))


def test_fingerprints_are_keyed_by_the_newest_master_key() -> None:
    old, both = box(OLD), box(NEW, OLD)
    assert len(old.fingerprint(API_KEY)) == 16 and old.fingerprint(API_KEY) != old.fingerprint(OTHER_KEY)
    assert both.fingerprint(API_KEY) != old.fingerprint(API_KEY)  # keyed: another master key, another print
    assert both.fingerprints(API_KEY) == {both.fingerprint(API_KEY), old.fingerprint(API_KEY)}


def test_reprs_show_no_secret() -> None:
    shown = repr(SecretBox([NEW, OLD]))
    assert shown == "SecretBox(2 master keys)"


# --- the registry's file -------------------------------------------------------------------------


async def test_the_api_key_never_appears_in_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "hosted.sqlite3"
    registry = await Registry.open(path, box())
    tenant, created = await registry.link(111, community_id="4242", api_url=API_URL, api_key=API_KEY)
    assert created
    await registry.record_change(111, 7, "admin", "set the API key (fingerprint " + tenant.fingerprint + ")")
    on_disk = file_bytes(path)  # before the connection closes: the -wal holds the last writes
    for secret in (API_KEY, tenant.push_token.get_secret_value()):
        assert secret.encode() not in on_disk
    assert b"4242" in on_disk  # (the file is read: the community id, not secret, is there)
    assert push_digest(tenant.push_token.get_secret_value()) in on_disk
    for shown in (repr(registry), repr(tenant), str(tenant)):
        assert API_KEY not in shown and tenant.push_token.get_secret_value() not in shown
    await registry.close()
    assert API_KEY.encode() not in file_bytes(path)
    reopened = await Registry.open(path, box())
    assert [t.api_key.get_secret_value() for t in await reopened.tenants()] == [API_KEY]
    await reopened.close()


async def test_the_api_key_is_in_no_column_on_postgres(pg_url: str, pg_schema: str) -> None:
    state = StateSettings(url=pg_url, schema_name=pg_schema)
    registry = await Registry.open_state(state, box())
    tenant, created = await registry.link(111, community_id="4242", api_url=API_URL, api_key=API_KEY)
    assert created
    await registry.record_change(111, 7, "admin", "set the API key (fingerprint " + tenant.fingerprint + ")")
    push_token = tenant.push_token.get_secret_value()
    for table in ("tenants", "guilds", "changes"):
        rows = await raw(state, f"SELECT * FROM {table}")
        assert rows, table
        for value in (value for row in rows for value in row):
            stored = value if isinstance(value, bytes) else str(value).encode()
            for secret in (API_KEY, push_token):
                assert secret.encode() not in stored, table
    ((community_id, digest),) = await raw(state, "SELECT community_id, push_digest FROM tenants")
    assert (community_id, bytes(digest)) == ("4242", push_digest(push_token))  # (the rows are read)
    for shown in (repr(registry), registry.describe()):
        assert API_KEY not in shown and pg_schema in shown
    await registry.close()


async def test_a_ciphertext_copied_into_another_row_is_refused(state: StateSettings) -> None:
    registry = await Registry.open_state(state, box())
    mine, _ = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    theirs, _ = await registry.link(222, community_id="2", api_url=API_URL, api_key=OTHER_KEY)
    await registry.close()
    # someone with the file, or the database, moves their key into our row
    await raw(
        state,
        "UPDATE tenants SET key_cipher = (SELECT key_cipher FROM tenants WHERE id = $1) WHERE id = $2",
        theirs.id,
        mine.id,
    )
    registry = await Registry.open_state(state, box())
    with pytest.raises(SecretMismatch, match="belongs to another row") as refused:
        await registry.tenants()
    assert "Sonoran community 1" in str(refused.value) and mine.id in str(refused.value)
    assert OTHER_KEY not in str(refused.value) and API_KEY not in str(refused.value)
    with pytest.raises(SecretMismatch):
        await registry.rotate_keys()  # not re-sealed as if it were ours
    assert (await registry.tenant(theirs.id)) is not None
    await registry.close()


async def test_rotation_leaves_the_registry_readable_with_the_new_key_alone(state: StateSettings) -> None:
    registry = await Registry.open_state(state, box(OLD))
    first, _ = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    await registry.link(222, community_id="2", api_url=API_URL, api_key=OTHER_KEY)
    await registry.close()
    old_cipher = await cipher(state, first.id)

    registry = await Registry.open_state(state, box(NEW, OLD))  # the new key in front, the old kept
    assert (await registry.tenant_by_fingerprint(API_KEY)) == first  # old prints still found
    assert await registry.rotate_keys() == 2
    rotated = await registry.tenant(first.id)
    assert rotated is not None and rotated.fingerprint == box(NEW).fingerprint(API_KEY)
    await registry.close()
    assert await cipher(state, first.id) != old_cipher
    if state.postgres_url is None:
        assert old_cipher not in file_bytes(state.path)  # the old sealed value is left nowhere in the file

    registry = await Registry.open_state(state, box(NEW))
    tenants = {t.id: t for t in await registry.tenants()}
    assert tenants[first.id].api_key.get_secret_value() == API_KEY
    assert tenants[first.id].push_token == first.push_token
    assert (await registry.tenant_by_fingerprint(OTHER_KEY)) is not None
    await registry.close()

    registry = await Registry.open_state(state, box(OLD))  # the old key alone: refused, naming the community
    with pytest.raises(MasterKeyError, match="cannot be decrypted with the master keys") as wrong:
        await registry.tenants()
    assert "Sonoran community 1" in str(wrong.value) or "Sonoran community 2" in str(wrong.value)
    assert all(secret not in str(wrong.value) for secret in (API_KEY, OTHER_KEY, OLD, NEW))
    await registry.close()


def _cipher(path: Path, tenant_id: str) -> bytes:
    with sqlite3.connect(path) as db:
        (cipher,) = db.execute("SELECT key_cipher FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    db.close()
    return bytes(cipher)


async def test_the_same_key_set_up_twice_is_found(registry: Registry) -> None:
    tenant, created = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    assert created and len(tenant.id) >= 16 and tenant.id != "1"
    # another server of the same community (a department server): the same tenant
    again, created = await registry.link(222, community_id="1", api_url=API_URL, api_key=API_KEY)
    assert (again.id, created) == (tenant.id, False)
    assert await registry.guild_ids_of(tenant.id) == [111, 222]
    # the same key for another community id, or on another CAD: refused
    for community_id, api_url in (("2", API_URL), ("1", "https://staging.sonorancad.com")):
        with pytest.raises(KeyInUse, match="already set up for another community") as in_use:
            await registry.link(333, community_id=community_id, api_url=api_url, api_key=API_KEY)
        assert in_use.value.community_id == "1" and API_KEY not in str(in_use.value)
    assert await registry.guild(333) is None and await registry.count_tenants() == 1
    found = await registry.tenant_by_fingerprint(API_KEY)
    assert found is not None and found.id == tenant.id
    assert await registry.tenant_by_fingerprint(OTHER_KEY) is None
    assert await registry.tenant_by_community(API_URL, "1") == found


async def test_a_new_key_for_the_community_keeps_the_guilds_config(registry: Registry) -> None:
    tenant, _ = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    config = GuildConfig(feeds=[FeedSettings(channel_id=4242)], dispatcher_role_ids=[55])
    await registry.save_config(111, config)
    await registry.save_options(tenant.id, CommunityOptions(cooldown_911_seconds=5))
    updated, created = await registry.link(111, community_id="1", api_url=API_URL, api_key=OTHER_KEY)
    assert not created and updated.id == tenant.id and updated.api_key.get_secret_value() == OTHER_KEY
    assert updated.fingerprint != tenant.fingerprint and updated.push_token == tenant.push_token
    assert updated.options.cooldown_911_seconds == 5
    linked = await registry.guild(111)
    assert linked is not None and linked.config == config
    assert await registry.tenant_by_fingerprint(API_KEY) is None  # the old key is nobody's now


async def test_a_guild_moving_to_another_community_starts_empty(registry: Registry) -> None:
    # a community id mistyped at first (v2 knows the community by its key), then set right
    first, _ = await registry.link(111, community_id="typo", api_url=API_URL, api_key=API_KEY)
    await registry.save_config(111, GuildConfig(audit_channel_id=9))
    second, created = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    assert created and second.id != first.id
    linked = await registry.guild(111)
    assert linked is not None and linked.tenant_id == second.id and linked.config == GuildConfig()
    # the community it left, with no guild left, is gone with its key
    assert await registry.tenant(first.id) is None and await registry.count_tenants() == 1


async def test_unlink_and_delete_tenant(state: StateSettings) -> None:
    registry = await Registry.open_state(state, box())
    tenant, _ = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    await registry.link(222, community_id="1", api_url=API_URL, api_key=API_KEY)
    await registry.record_change(111, 7, "admin", "added the feed of #calls")
    await registry.record_change(111, 7, "admin", "set the audit channel")
    assert [c.what for c in await registry.changes(111)] == ["set the audit channel", "added the feed of #calls"]
    assert [c.what for c in await registry.changes(111, limit=1)] == ["set the audit channel"]

    assert await registry.unlink(111) == tenant.id
    assert await registry.unlink(111) is None
    assert await registry.changes(111) == [] and await registry.guild_ids_of(tenant.id) == [222]
    sealed = await cipher(state, tenant.id)
    await registry.delete_tenant(tenant.id)
    assert await registry.tenant(tenant.id) is None and await registry.guilds() == []
    assert await registry.count_tenants() == 0
    assert await raw(state, "SELECT id FROM tenants") == []
    if state.postgres_url is None:
        assert sealed not in file_bytes(state.path) and API_KEY.encode() not in file_bytes(state.path)
    await registry.close()
    if state.postgres_url is None:
        assert sealed not in file_bytes(state.path)


async def test_two_processes_linking_one_community_at_once_make_it_once(pg_url: str, pg_schema: str) -> None:
    """Two bots on one PostgreSQL registry, two servers of one community set up at the same moment:
    one community, both servers in it. Each bot has a pool of its own, as two processes would (a
    URL of its own), its connection open before the two links start."""
    state = StateSettings(url=pg_url, schema_name=pg_schema)
    sep = "&" if "?" in pg_url else "?"
    own = [StateSettings(url=f"{pg_url}{sep}application_name={name}", schema_name=pg_schema) for name in ("a", "b")]
    first, second = [await Registry.open_state(settings, box()) for settings in own]
    try:
        (one, one_created), (two, two_created) = await asyncio.gather(
            first.link(111, community_id="1", api_url=API_URL, api_key=API_KEY),
            second.link(222, community_id="1", api_url=API_URL, api_key=API_KEY),
        )
        assert one.id == two.id and sorted([one_created, two_created]) == [False, True]
        assert await first.count_tenants() == 1
        assert await second.guild_ids_of(one.id) == [111, 222]
        assert await raw(state, "SELECT guild_id, tenant_id FROM guilds ORDER BY guild_id") == [
            (111, one.id),
            (222, one.id),
        ]
    finally:
        await first.close()
        await second.close()


async def test_a_single_community_schema_is_refused_on_postgres(pg_url: str, pg_schema: str) -> None:
    store = await Store.open_postgres(pg_url, pg_schema)
    await store.close()
    with pytest.raises(StateFileError, match="single-community \\(TOML mode\\) state schema") as refused:
        await Registry.open_state(StateSettings(url=pg_url, schema_name=pg_schema), box())
    assert pg_schema in str(refused.value)


async def test_a_registry_schema_is_refused_by_a_single_community_on_postgres(pg_url: str, pg_schema: str) -> None:
    state = StateSettings(url=pg_url, schema_name=pg_schema)
    await (await Registry.open_state(state, box())).close()
    with pytest.raises(StateFileError, match="is a hosted deployment's registry") as refused:
        await Store.open_state(state, "1")
    assert pg_schema in str(refused.value)
    posts = "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'posts'"
    assert await raw(state, posts, pg_schema) == []  # untouched


async def test_a_registry_from_a_newer_version_is_refused_on_postgres(pg_url: str, pg_schema: str) -> None:
    state = StateSettings(url=pg_url, schema_name=pg_schema)
    await (await Registry.open_state(state, box())).close()
    await raw(state, "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
    with pytest.raises(StateFileError, match="newer version of the bot \\(hosted schema 99"):
        await Registry.open_state(state, box())


async def test_push_token_rotation(registry: Registry) -> None:
    tenant, _ = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    rotated = await registry.rotate_push_token(tenant.id)
    assert rotated.push_token != tenant.push_token and rotated.api_key == tenant.api_key
    assert (await registry.tenant(tenant.id)) == rotated
    with pytest.raises(LookupError):
        await registry.rotate_push_token("nobody")


async def test_a_single_community_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = await Store.open(path)
    await store.close()
    with pytest.raises(StateFileError, match="single-community \\(TOML mode\\) state file"):
        await Registry.open(path, box())


async def test_a_hosted_state_file_is_refused_by_a_single_community(tmp_path: Path) -> None:
    path = tmp_path / "hosted.sqlite3"
    registry = await Registry.open(path, box())
    await registry.close()
    with pytest.raises(StateFileError, match="is a hosted deployment's state file"):
        await Store.open(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'posts'").fetchone() is None  # untouched
    db.close()


# --- configuration, `check` and the command line -------------------------------------------------

HOSTED = """
[discord]
token = "discord-token-SECRET"

[state]
path = "{state}"

[hosting]
enabled = true
"""


def hosted_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(HOSTED.format(state=(tmp_path / "hosted.sqlite3").as_posix()) + extra)
    return path


def test_a_hosted_file_loads_without_sonoran(tmp_path: Path) -> None:
    settings = load_settings(hosted_config(tmp_path), {"SONORAN_BOT_HOSTING__SECRET_KEYS": f"{NEW},{OLD}"})
    assert settings.hosting.enabled and settings.sonoran is None
    assert master_keys(settings.hosting) == [NEW, OLD]
    assert NEW not in repr(settings)


def test_a_hosted_file_with_a_community_is_refused_naming_it(tmp_path: Path) -> None:
    extra = '\n[sonoran]\ncommunity_id = "1"\napi_key = "file-key-SECRET"\n'
    with pytest.raises(ConfigError, match=r"\[sonoran\]") as refused:
        load_settings(hosted_config(tmp_path, extra), {})
    assert "file-key-SECRET" not in str(refused.value)


async def test_check_says_the_keys_decrypt_or_what_is_wrong(tmp_path: Path) -> None:
    environ = {"SONORAN_BOT_HOSTING__SECRET_KEYS": OLD}
    settings = load_settings(hosted_config(tmp_path), environ)
    registry = await Registry.open(settings.state.path, box(OLD))
    await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    await registry.close()

    checks = await hosting_checks(settings)
    assert [(c.name, c.ok) for c in checks] == [("master keys", True), ("state file", True), ("community keys", True)]
    assert "1 communities' keys decrypt" in checks[-1].detail

    wrong = await hosting_checks(load_settings(hosted_config(tmp_path), {"SONORAN_BOT_HOSTING__SECRET_KEYS": NEW}))
    assert (wrong[-1].name, wrong[-1].ok, wrong[-1].fatal) == ("community keys", False, True)
    assert "cannot be decrypted" in wrong[-1].detail and "keys rotate" in wrong[-1].fix
    missing = await hosting_checks(load_settings(hosted_config(tmp_path), {}))
    assert [(c.name, c.ok) for c in missing] == [("master keys", False)]
    for check in [*checks, *wrong, *missing]:
        assert all(secret not in check.line() for secret in (API_KEY, OLD, NEW))


async def test_check_and_keys_rotate_on_postgres(
    tmp_path: Path, pg_url: str, pg_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = StateSettings(path=tmp_path / "hosted.sqlite3", url=pg_url, schema_name=pg_schema)
    settings = load_settings(hosted_config(tmp_path), {"SONORAN_BOT_HOSTING__SECRET_KEYS": f"{NEW},{OLD}"})
    settings = settings.model_copy(update={"state": state})
    registry = await Registry.open_state(state, box(OLD))
    tenant, _ = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
    await registry.close()

    checks = await hosting_checks(settings)
    assert [(c.name, c.ok) for c in checks] == [("master keys", True), ("state file", True), ("community keys", True)]
    assert f"(schema {pg_schema}): opened and written" in checks[1].detail
    assert await rotate(settings) == 0
    assert "re-encrypted 1 communities' keys" in capsys.readouterr().out
    assert box(NEW).open(tenant.id, await cipher(state, tenant.id)) == API_KEY
    assert not (tmp_path / "hosted.sqlite3").exists()  # the registry is on the server, not in a file


async def test_check_in_hosted_mode_asks_no_cad(tmp_path: Path, discord_api: FakeDiscord) -> None:
    settings = load_settings(hosted_config(tmp_path), {"SONORAN_BOT_HOSTING__SECRET_KEYS": OLD})
    checks = await run_checks(settings)
    assert [c.name for c in checks] == ["master keys", "state file", "community keys", "discord token"]
    assert all(c.ok for c in checks), "\n".join(c.line() for c in checks)


def test_check_on_the_command_line_in_hosted_mode(
    tmp_path: Path, discord_api: FakeDiscord, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SONORAN_BOT_HOSTING__SECRET_KEYS", f"{NEW},{OLD}")
    assert main(["check", "--config", str(hosted_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "ok      community keys: 0 communities' keys decrypt" in out and "4 ok, 0 problem(s)" in out
    assert NEW not in out and OLD not in out


def test_keys_generate_prints_a_key_and_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and repr(SecretBox([out.strip()])) == "SecretBox(1 master key)"


def test_keys_rotate_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = hosted_config(tmp_path)

    async def set_up() -> Any:
        registry = await Registry.open(tmp_path / "hosted.sqlite3", box(OLD))
        tenant, _ = await registry.link(111, community_id="1", api_url=API_URL, api_key=API_KEY)
        await registry.close()
        return tenant

    tenant = asyncio.run(set_up())
    monkeypatch.setenv("SONORAN_BOT_HOSTING__SECRET_KEYS", f"{NEW},{OLD}")
    assert main(["keys", "rotate", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "re-encrypted 1 communities' keys under the newest master key" in captured.out
    assert box(NEW).open(tenant.id, _cipher(tmp_path / "hosted.sqlite3", tenant.id)) == API_KEY

    monkeypatch.setenv("SONORAN_BOT_HOSTING__SECRET_KEYS", OLD)  # the new key lost: one line, exit 1
    assert main(["keys", "rotate", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("keys rotate: ") and "cannot be decrypted" in err and err.count("\n") == 1
    assert all(secret not in err for secret in (API_KEY, OLD, NEW))

    single = tmp_path / "single.toml"
    single.write_text('[discord]\ntoken = "t"\n[sonoran]\ncommunity_id = "1"\napi_key = "k"\n')
    assert main(["keys", "rotate", "--config", str(single)]) == 1
    assert "hosting.enabled is false" in capsys.readouterr().err
