"""Name and plate lookups: what is asked (`LookupQuery`) and the records that come back, read
leniently (`records_from_payload`): a record that cannot be read is left out, never the list.

A record is `{recordTypeId, id, syncId, name, type, sections: [{category, label, dependency?,
fields: [{type, label, value, uid, isSupervisor, isPreviewed, data, dependency?}]}]}` (see
../shared/sonoran-api.md, 3.6). v1 wraps the list as `{"records": [...]}`; v2 answers the array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .numbers import read_optional_code

MAX_RECORDS = 100  # a lookup's answer is cut there (a partial "a" matches half a community)
MAX_SECTIONS = 40
MAX_FIELDS = 80
MAX_VALUE = 1_000  # characters of one value kept (an image field may hold a data URL)


@dataclass(frozen=True)
class LookupQuery:
    """What is sent: all four text keys always (v1 needs them present), `types` always."""

    first: str = ""
    last: str = ""
    mi: str = ""
    plate: str = ""
    types: tuple[int, ...] = (2, 3, 4, 5)
    partial: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "mi": self.mi,
            "plate": self.plate,
            "types": list(self.types),
            "partial": self.partial,
        }


@dataclass(frozen=True)
class Dependency:
    """Shows a field or section only when the record's field `fid` matches (EQUAL, NOTEQUAL, CONTAINS)."""

    kind: str
    fid: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class RecordField:
    uid: str
    label: str
    value: str
    kind: str = ""  # Sonoran's field `type` (text, select, date, ...)
    supervisor: bool = False  # isSupervisor: for supervisors only
    flags: tuple[str, ...] = ()  # a flags field's `data.flags`
    linked: str = ""  # a linked character or vehicle in `data` (first last, or plate)
    dependency: Dependency | None = None


@dataclass(frozen=True)
class RecordSection:
    category: int | None
    label: str
    fields: tuple[RecordField, ...]
    dependency: Dependency | None = None


FLAGS_SECTION = 1  # section `category` 1 holds the record's flags


@dataclass(frozen=True)
class LookupRecord:
    id: str
    type: int | None  # 2 warrant, 3 BOLO, 4 license, 5 registration, 7 character, 8-16 other records
    name: str
    sections: tuple[RecordSection, ...]

    def values(self) -> dict[str, str]:
        """Every field's value by uid (the first one wins), for dependencies and flags."""
        out: dict[str, str] = {}
        for section in self.sections:
            for field in section.fields:
                if field.uid and field.uid not in out:
                    out[field.uid] = field.value
        return out


def records_from_payload(payload: Any) -> list[LookupRecord]:
    """The records of a lookup's answer; raises ValueError when it holds no list at all."""
    if isinstance(payload, dict):
        payload = next((v for k, v in payload.items() if str(k).lower() == "records"), None)
    if not isinstance(payload, list):
        raise ValueError("no record list")
    records = []
    for item in payload[:MAX_RECORDS]:
        record = _record(item)
        if record is not None:
            records.append(record)
    return records


def _record(item: Any) -> LookupRecord | None:
    if not isinstance(item, dict):
        return None
    sections = item.get("sections")
    return LookupRecord(
        id=_text(item.get("id")),
        type=read_optional_code(item.get("type")),
        name=_text(item.get("name")),
        sections=tuple(
            section
            for section in (_section(s) for s in (sections if isinstance(sections, list) else [])[:MAX_SECTIONS])
            if section is not None
        ),
    )


def _section(item: Any) -> RecordSection | None:
    if not isinstance(item, dict):
        return None
    fields = item.get("fields")
    return RecordSection(
        category=read_optional_code(item.get("category")),
        label=_text(item.get("label")),
        fields=tuple(
            field
            for field in (_field(f) for f in (fields if isinstance(fields, list) else [])[:MAX_FIELDS])
            if field is not None
        ),
        dependency=_dependency(item.get("dependency")),
    )


def _field(item: Any) -> RecordField | None:
    if not isinstance(item, dict):
        return None
    data = item.get("data")
    data = data if isinstance(data, dict) else {}
    flags = data.get("flags")
    return RecordField(
        uid=_text(item.get("uid")),
        label=_text(item.get("label")),
        value=_text(item.get("value")),
        kind=_text(item.get("type")),
        supervisor=item.get("isSupervisor") is True,
        flags=tuple(t for t in (_text(f) for f in flags) if t) if isinstance(flags, list) else (),
        linked=_linked(data),
        dependency=_dependency(item.get("dependency")),
    )


def _linked(data: Mapping[str, Any]) -> str:
    """A linked character (`first`, `last`) or vehicle (`plate`) that a field carries in `data`."""
    name = " ".join(t for t in (_text(data.get("first")), _text(data.get("last"))) if t)
    return name or _text(data.get("plate"))


def _dependency(item: Any) -> Dependency | None:
    if not isinstance(item, dict):
        return None
    values = item.get("acceptableValues")
    if not isinstance(values, list):
        values = [values] if values is not None else []
    return Dependency(
        kind=_text(item.get("type")).upper() or "EQUAL",
        fid=_text(item.get("fid")),
        values=tuple(_text(v) for v in values),
    )


def _text(value: Any) -> str:
    """Any JSON value as text: strings as they are, numbers as numbers (an infinite one as
    nothing), lists joined; objects and null as nothing."""
    if isinstance(value, str):
        return value[:MAX_VALUE]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)[:MAX_VALUE]
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else ""
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v) for v in value[:MAX_FIELDS] if not isinstance(v, (list, dict))) if t)[
            :MAX_VALUE
        ]
    return ""
