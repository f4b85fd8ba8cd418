"""What the units half keeps in the state file: panic alerts (one row per panic and alert channel)
and the unit boards' messages. Written before anything is sent, as the feed's posts are: a message's
nonce is stored first, so a re-send after a crash is the same message, never a second one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from ..db import Row
from ..sonoran.models import ServerId, Unit
from ..store import Store

_ALERT_COLUMNS = (
    "id, channel_id, server_id, ident_id, unit, call, started_at, cleared_at, acked_by, acked_at, nonce, "
    "message_id, version, shown, members"
)
SUMMARY_IDENT = -1  # a summary alert's row has a negative ident_id: -1, or the next below an open summary's


@dataclass(frozen=True)
class Alert:
    """One panic of one unit, as one message in one alert channel."""

    id: int
    channel_id: int
    server_id: ServerId
    unit: Unit  # as last seen
    call: str | None  # the call it was on, as shown (`#1042 · Armed robbery`), when known
    started_at: float
    cleared_at: float | None
    acked_by: str | None
    acked_at: float | None
    nonce: str
    message_id: int | None
    version: str  # what the message should show
    shown: str | None  # what it does show
    # a panic storm's summary alert (one for the panics past the cap): the units it lists, each as
    # last seen (`is_panic` False once theirs cleared); None on a unit's own alert
    members: tuple[Unit, ...] | None = None

    @property
    def ident(self) -> int:
        return SUMMARY_IDENT if self.members is not None else self.unit.id

    @property
    def is_summary(self) -> bool:
        return self.members is not None

    @property
    def is_open(self) -> bool:
        """The panic lasts, or its message does not show its latest state yet."""
        return self.cleared_at is None or self.message_id is None or self.shown != self.version

    def changed(self, **changes: Any) -> Alert:
        """The alert with `changes`, and the version of what its message should now show."""
        alert = replace(self, **changes)
        return replace(alert, version=alert_version(alert))


def alert_version(alert: Alert) -> str:
    shown: list[Any] = [
        alert.unit.model_dump(mode="json"),
        alert.call,
        alert.cleared_at,
        alert.acked_by,
        alert.acked_at,
    ]
    if alert.members is not None:  # a unit's alert hashes as before: no edit storm on upgrade
        shown.append([unit.model_dump(mode="json") for unit in alert.members])
    return hashlib.sha1(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]


def _alert(row: Row) -> Alert:
    try:
        unit = Unit.model_validate_json(row["unit"])
    except ValidationError:  # written by a version that read units differently
        unit = Unit(id=max(0, row["ident_id"]))
    members = None
    if row["members"] is not None:
        try:
            members = tuple(Unit.model_validate(item) for item in json.loads(row["members"]))
        except (ValidationError, ValueError, TypeError):
            members = ()
    return Alert(
        id=row["id"],
        channel_id=row["channel_id"],
        server_id=row["server_id"],
        unit=unit,
        call=row["call"],
        started_at=row["started_at"],
        cleared_at=row["cleared_at"],
        acked_by=row["acked_by"],
        acked_at=row["acked_at"],
        nonce=row["nonce"],
        message_id=row["message_id"],
        version=row["version"],
        shown=row["shown"],
        members=members,
    )


class AlertRecords:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def open_alerts(self) -> list[Alert]:
        rows = await self.store.fetch(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE cleared_at IS NULL OR message_id IS NULL "
            f"OR shown {self.store.db.dialect.distinct} version ORDER BY id"
        )
        return [_alert(row) for row in rows]

    async def get(self, alert_id: int) -> Alert | None:
        rows = await self.store.fetch(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return _alert(rows[0]) if rows else None

    async def add(self, channel_id: int, server_id: ServerId, unit: Unit, call: str | None, started_at: float) -> Alert:
        nonce = hashlib.sha1(f"alert|{channel_id}|{server_id}|{unit.id}|{started_at!r}".encode()).hexdigest()[:25]
        draft = Alert(0, channel_id, server_id, unit, call, started_at, None, None, None, nonce, None, "", None)
        draft = draft.changed()
        async with self.store.writing() as db:
            (row,) = await db.fetch(
                "INSERT INTO alerts (channel_id, server_id, ident_id, unit, call, started_at, nonce, version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (channel_id, server_id, unit.id, unit.model_dump_json(), call, started_at, nonce, draft.version),
            )
        return replace(draft, id=int(row["id"]))

    async def add_summary(self, channel_id: int, server_id: ServerId, units: list[Unit], started_at: float) -> Alert:
        """The one summary alert of a panic storm in a channel, listing `units`."""
        nonce = hashlib.sha1(f"alert|{channel_id}|{server_id}|summary|{started_at!r}".encode()).hexdigest()[:25]
        members = tuple(units)
        draft = Alert(0, channel_id, server_id, units[0], None, started_at, None, None, None, nonce, None, "", None)
        draft = replace(draft, members=members).changed()
        async with self.store.writing() as db:
            # an acknowledged summary stays open beside a new one: each takes an ident of its own
            ((below,),) = await db.fetch(
                "SELECT MIN(ident_id) FROM alerts WHERE channel_id = ? AND server_id = ? AND cleared_at IS NULL "
                "AND ident_id < 0",
                (channel_id, server_id),
            )
            (row,) = await db.fetch(
                "INSERT INTO alerts (channel_id, server_id, ident_id, unit, call, started_at, nonce, version, members) "
                "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?) RETURNING id",
                (
                    channel_id,
                    server_id,
                    SUMMARY_IDENT if below is None else below - 1,
                    units[0].model_dump_json(),
                    started_at,
                    nonce,
                    draft.version,
                    _members_json(members),
                ),
            )
        return replace(draft, id=int(row["id"]))

    async def update(self, alert: Alert) -> None:
        async with self.store.writing() as db:
            await db.execute(
                "UPDATE alerts SET unit = ?, call = ?, cleared_at = ?, acked_by = ?, acked_at = ?, version = ?, "
                "members = ? WHERE id = ?",
                (
                    alert.unit.model_dump_json(),
                    alert.call,
                    alert.cleared_at,
                    alert.acked_by,
                    alert.acked_at,
                    alert.version,
                    _members_json(alert.members),
                    alert.id,
                ),
            )

    async def mark_sent(self, alert_id: int, message_id: int, shown: str | None) -> None:
        async with self.store.writing() as db:
            await db.execute("UPDATE alerts SET message_id = ?, shown = ? WHERE id = ?", (message_id, shown, alert_id))

    async def mark_shown(self, alert_id: int, version: str) -> None:
        async with self.store.writing() as db:
            await db.execute("UPDATE alerts SET shown = ? WHERE id = ?", (version, alert_id))

    async def forget_cleared(self, older_than: float) -> None:
        async with self.store.writing() as db:
            await db.execute(
                "DELETE FROM alerts WHERE cleared_at IS NOT NULL AND cleared_at < ? "
                f"AND shown {self.store.db.dialect.not_distinct} version",
                (older_than,),
            )


def _members_json(members: tuple[Unit, ...] | None) -> str | None:
    if members is None:
        return None
    return json.dumps([unit.model_dump(mode="json", by_alias=True, exclude_defaults=True) for unit in members])


@dataclass(frozen=True)
class BoardPage:
    """One message of a unit board."""

    page: int
    nonce: str
    message_id: int | None
    shown: str | None


class BoardRecords:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def pages(self, channel_id: int, server_id: ServerId) -> dict[int, BoardPage]:
        rows = await self.store.fetch(
            "SELECT page, nonce, message_id, shown FROM board_pages WHERE channel_id = ? AND server_id = ?",
            (channel_id, server_id),
        )
        return {row["page"]: BoardPage(row["page"], row["nonce"], row["message_id"], row["shown"]) for row in rows}

    async def plan(self, channel_id: int, server_id: ServerId, page: int, nonce: str) -> BoardPage:
        async with self.store.writing() as db:
            await db.execute(
                "INSERT INTO board_pages VALUES (?, ?, ?, ?, NULL, NULL) ON CONFLICT (channel_id, server_id, page) "
                "DO UPDATE SET nonce = excluded.nonce, message_id = NULL, shown = NULL",
                (channel_id, server_id, page, nonce),
            )
        return BoardPage(page, nonce, None, None)

    async def mark(self, channel_id: int, server_id: ServerId, page: int, message_id: int, shown: str | None) -> None:
        async with self.store.writing() as db:
            await db.execute(
                "UPDATE board_pages SET message_id = ?, shown = ? WHERE channel_id = ? AND server_id = ? AND page = ?",
                (message_id, shown, channel_id, server_id, page),
            )

    async def drop(self, channel_id: int, server_id: ServerId, page: int) -> None:
        async with self.store.writing() as db:
            await db.execute(
                "DELETE FROM board_pages WHERE channel_id = ? AND server_id = ? AND page = ?",
                (channel_id, server_id, page),
            )
