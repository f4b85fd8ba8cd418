"""Sonoran push events: the `{key, type, data}` envelope the CAD POSTs (or the FiveM resource
forwards, or the SignalR hub sends as `pushEvent`), read into typed events.

`data` may be an object or a list of objects (the docs show both; the official receivers read an
object): a list yields one event per object. Only the events that change the feed, the unit board
or the panic alerts are typed; any other type is `Ignored`. Nothing in here raises on a strange
payload except `BadEnvelope`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .models import UNREADABLE, CallId, DispatchCall, EmergencyCall, Note, Unit, left_out
from .numbers import ids, loads, read_optional_code


class BadEnvelope(ValueError):
    """Not a JSON object with `type` and `data`."""


@dataclass(frozen=True)
class New911:
    call: EmergencyCall


@dataclass(frozen=True)
class Removed911:
    call_ids: tuple[CallId, ...]


@dataclass(frozen=True)
class DispatchChanged:
    """EVENT_DISPATCH_NEW and EVENT_DISPATCH_EDIT: the call as it now is."""

    call: DispatchCall


@dataclass(frozen=True)
class DispatchClosed:
    call_ids: tuple[CallId, ...]


@dataclass(frozen=True)
class NoteAdded:
    call_id: CallId
    note: Note


@dataclass(frozen=True)
class UnitsMoved:
    """EVENT_DISPATCH_UNIT_ATTACH (`attached`) and _DETACH: unit identifier ids on a call."""

    call_id: CallId
    idents: tuple[int, ...]
    attached: bool


@dataclass(frozen=True)
class UnitsOnDuty:
    """EVENT_UNIT_LOGIN (`unit`), EVENT_UNIT_UPDATE (`units`) and the newer EVENT_UNIT_STATUS
    (`units`): units as they now are."""

    units: tuple[Unit, ...]


@dataclass(frozen=True)
class UnitsOffDuty:
    """EVENT_UNIT_LOGOUT (`identId`)."""

    idents: tuple[int, ...]


@dataclass(frozen=True)
class StatusChanged:
    """EVENT_UNIT_STATUS in its older form: `identIds` (a list or a scalar) and `status`."""

    idents: tuple[int, ...]
    status: int


@dataclass(frozen=True)
class PanicChanged:
    """EVENT_UNIT_PANIC: `identIds` (legacy `identId`) and `isPanic`."""

    idents: tuple[int, ...]
    panic: bool


UnitEvent = UnitsOnDuty | UnitsOffDuty | StatusChanged | PanicChanged


@dataclass(frozen=True)
class Ignored:
    type: str


Event = New911 | Removed911 | DispatchChanged | DispatchClosed | NoteAdded | UnitsMoved | UnitEvent | Ignored


@dataclass(frozen=True)
class Envelope:
    key: str
    type: str
    data: list[dict[str, Any]]

    def __repr__(self) -> str:  # the key is the community's API key
        return f"Envelope(type={self.type!r}, items={len(self.data)})"


def read_envelope(body: bytes | str | dict[str, Any]) -> Envelope:
    """The envelope of a push body; `pushEvent` over SignalR may hand over a string or an object."""
    payload: Any = body
    if isinstance(body, (bytes, str)):
        try:
            payload = loads(body)
        except (ValueError, UnicodeError):
            raise BadEnvelope("the body is not JSON") from None
        except RecursionError:
            raise BadEnvelope("the body is nested too deep") from None
    if not isinstance(payload, dict):
        raise BadEnvelope("the body is not a JSON object")
    kind, data, key = payload.get("type"), payload.get("data"), payload.get("key")
    if not isinstance(kind, str) or not kind or "data" not in payload:
        raise BadEnvelope("the body has no 'type' and 'data'")
    if not _is_text(kind) or (isinstance(key, str) and not _is_text(key)):
        raise BadEnvelope("'type' or 'key' is not text (a lone surrogate)")
    kind = ascii_upper(kind)  # the FiveM receiver upper-cases the type before it compares
    items: list[Any] = data if isinstance(data, list) else [data]
    objects = [item for item in items if isinstance(item, dict)]
    if len(objects) != len(items):
        raise BadEnvelope("'data' is neither an object nor a list of objects")
    return Envelope(key if isinstance(key, str) else "", kind, objects)


def without_key(body: bytes) -> bytes:
    """The envelope of a push body without its key: what one process stores for another once it
    has checked the key itself (the community's API key is kept sealed, never in plain at rest).
    BadEnvelope as `read_envelope`."""
    envelope = read_envelope(body)
    return json.dumps({"type": envelope.type, "data": envelope.data}).encode()


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeError:
        return False
    return True


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_upper(text: str) -> str:
    """Upper case for ASCII letters only: no other character becomes one (`str.upper` and
    `casefold` turn the Kelvin sign into a K and "ı" into an I)."""
    return text.translate(_ASCII_UPPER)


def key_matches(given: str, expected: str) -> bool:
    """Case-insensitive on ASCII letters only, as the FiveM receiver compares, and in constant time.
    Any string compares, a lone surrogate included."""
    return bool(expected) and hmac.compare_digest(
        ascii_upper(given).encode("utf-8", "surrogatepass"), ascii_upper(expected).encode("utf-8", "surrogatepass")
    )


def events_of(envelope: Envelope) -> Iterator[Event]:
    for item in envelope.data:
        yield _event(envelope.type, item)


def _event(kind: str, data: dict[str, Any]) -> Event:
    try:
        if kind == "EVENT_911" and isinstance(data.get("call"), dict):
            call = dict(data["call"])
            if not call.get("metaData") and isinstance(data.get("metaData"), dict):
                call["metaData"] = data["metaData"]  # the docs show it beside `call` at times
            return New911(EmergencyCall.model_validate(call))
        if kind == "EVENT_REMOVE_911":
            return Removed911(_ids(_either(data, "callIds", "callId")))
        if kind in ("EVENT_DISPATCH_NEW", "EVENT_DISPATCH_EDIT") and isinstance(data.get("dispatch"), dict):
            return DispatchChanged(DispatchCall.model_validate(data["dispatch"]))
        if kind == "EVENT_DISPATCH_CLOSED":
            return DispatchClosed(_ids(_either(data, "callIds", "callId")))
        if kind == "EVENT_DISPATCH_NOTE" and isinstance(data.get("note"), dict):
            (call_id,) = _ids(data.get("callId")) or (None,)
            if call_id is not None:
                return NoteAdded(call_id, Note.model_validate(data["note"]))
        if kind in ("EVENT_DISPATCH_UNIT_ATTACH", "EVENT_DISPATCH_UNIT_DETACH"):
            (call_id,) = _ids(data.get("callId")) or (None,)
            idents = _ids(_either(data, "idents", "ident"), MAX_IDS_PER_EVENT)
            if call_id is not None and idents:
                return UnitsMoved(call_id, idents, attached=kind.endswith("ATTACH"))
        if kind.startswith("EVENT_UNIT_"):
            return _unit_event(kind, data)
    except UNREADABLE as error:  # one event that cannot be read costs that event only (see `.numbers`)
        record = data.get("call") or data.get("dispatch") or data.get("unit")
        left_out("push", kind, record.get("callId", record.get("id")) if isinstance(record, dict) else None, error)
    return Ignored(kind)


MAX_UNITS_PER_EVENT = 100  # units one unit event may carry (a page of the list); more are the list's to bring
MAX_IDS_PER_EVENT = 100  # identifier ids one unit event may name


def _unit_event(kind: str, data: dict[str, Any]) -> Event:
    if kind == "EVENT_UNIT_LOGIN" and isinstance(data.get("unit"), dict):
        unit = Unit.model_validate(data["unit"])
        if _flag(data.get("isDispatch")):  # beside `unit`, not inside it (the docs; FiveM copies it in)
            unit = unit.model_copy(update={"is_dispatch": True})
        return UnitsOnDuty((unit,))
    if kind in ("EVENT_UNIT_UPDATE", "EVENT_UNIT_STATUS") and isinstance(data.get("units"), list):
        units = tuple(_units(data["units"][:MAX_UNITS_PER_EVENT]))
        if units:
            return UnitsOnDuty(units)
    # both the list and the legacy scalar, as the FiveM resource reads them
    idents = _ids(data.get("identIds"), MAX_IDS_PER_EVENT) + _ids(data.get("identId"), 1)
    idents = tuple(dict.fromkeys(idents))[:MAX_IDS_PER_EVENT]
    if kind == "EVENT_UNIT_LOGOUT" and idents:
        return UnitsOffDuty(idents)
    # a status that cannot be read leaves the event nothing to say: ignored (the next units read
    # shows what the CAD has), where a unit in a list keeps its place with an unknown status
    status = read_optional_code(data.get("status"))
    if kind == "EVENT_UNIT_STATUS" and idents and status is not None:
        return StatusChanged(idents, status)
    panic = _flag(data.get("isPanic"))
    if kind == "EVENT_UNIT_PANIC" and idents and panic is not None:
        return PanicChanged(idents, panic)
    return Ignored(kind)


def _units(items: list[Any]) -> Iterator[Unit]:
    """The units of a list that can be read (one that cannot costs that unit only)."""
    for item in items:
        try:
            yield Unit.model_validate(item)
        except UNREADABLE as error:
            left_out("push", "units", item.get("id") if isinstance(item, dict) else None, error)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _either(data: dict[str, Any], plural: str, singular: str) -> Any:
    """The list field, or the single one when the list is absent or null (`idents: null, ident: 7`)."""
    value = data.get(plural)
    return value if value is not None else data.get(singular)


def _ids(value: Any, most: int | None = None) -> tuple[int, ...]:
    """The ids that can be stored (one that is no id, negative, 1e400, past 64 bits, is left out),
    up to `most` of them: a list of 95,000 is read no further."""
    return tuple(ids(value, most))
