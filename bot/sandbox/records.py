"""The sandbox CAD's records, in Sonoran's shape, and its answer to a name or plate lookup.

A small community: Jane Doe (an active warrant, a suspended license, a stolen car with an active
BOLO on it), John Smith (all in order, a closed warrant), and one character whose every text is
hostile (mentions, markdown, a masked link). Some fields are for supervisors only
(`isSupervisor`), and some fields and sections are hidden by a `dependency` on another field, as
the CAD's record templates make them.

How the sandbox matches (Sonoran does not document it; an assumption): names compare without
case, whole or (with `partial`) as a prefix; a plate compares without case or spaces. What matches
brings its owner's records along (the owner is the person a record names), so a plate lookup
shows the owner, their license and their warrants; characters (type 7) always come back,
whatever `types` asks.
"""

from __future__ import annotations

import copy
from typing import Any

WARRANT, BOLO, LICENSE, REGISTRATION, CHARACTER = 2, 3, 4, 5, 7
NAME_KEYS = ("first", "last", "mi", "plate")


def field(uid: str, label: str, value: Any, kind: str = "text", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": kind,
        "label": label,
        "value": value,
        "uid": uid,
        "isSupervisor": False,
        "isPreviewed": False,
        "data": {},
    }
    out.update(extra)
    return out


def section(label: str, fields: list[dict[str, Any]], category: int = 0, **extra: Any) -> dict[str, Any]:
    return {"category": category, "label": label, "fields": fields, **extra}


def flags(*names: str) -> dict[str, Any]:
    """The flags section (category 1): its first field's `data.flags`."""
    return section("Flags", [field("flags", "Flags", "", "flags", data={"flags": list(names)})], category=1)


def person(first: str, last: str, mi: str = "") -> list[dict[str, Any]]:
    return [field("first", "First Name", first), field("last", "Last Name", last), field("mi", "M.I.", mi)]


_next_id = [5000]


def record(kind: int, name: str, *sections: dict[str, Any]) -> dict[str, Any]:
    _next_id[0] += 1
    return {
        "recordTypeId": kind,
        "id": _next_id[0],
        "syncId": "",
        "name": name,
        "type": kind,
        "sections": list(sections),
    }


def character(first: str, last: str, mi: str, dob: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return record(
        CHARACTER,
        "Civilian",
        section("Civilian", [*person(first, last, mi), field("dob", "Date of Birth", dob, "date")]),
        *extra,
    )


def sample_records() -> list[dict[str, Any]]:
    """A fresh copy of the sandbox's records (a test may change its own)."""
    return copy.deepcopy(_SAMPLE)


_SAMPLE: list[dict[str, Any]] = [
    character(
        "Jane",
        "Doe",
        "Q",
        "1990-04-12",
        section(
            "Details",
            [
                field("sex", "Sex", "F", "select"),
                field("deceased", "Deceased", "NO", "select"),
                # shown only when deceased = YES: Sonoran's webhooks leave it out here
                field(
                    "dod",
                    "Date of Death",
                    "2026-10-31",
                    "date",
                    dependency={"type": "EQUAL", "fid": "deceased", "acceptableValues": ["YES"]},
                ),
                field("informant", "Confidential Informant", "Handler: Sgt. Reyes", isSupervisor=True),
            ],
        ),
        section(
            "Gang Affiliation",
            [field("gang", "Gang", "Vagos")],
            dependency={"type": "NOTEQUAL", "fid": "sex", "acceptableValues": ["F"]},
        ),
    ),
    record(
        LICENSE,
        "Driver License",
        section(
            "License",
            [
                *person("Jane", "Doe", "Q"),
                field("type", "License Type", "Class C", "select"),
                field("status", "Status", "SUSPENDED", "select"),
                field("expiration", "Expiration", "01/31/2027", "date"),
            ],
        ),
    ),
    record(
        REGISTRATION,
        "Vehicle Registration",
        section(
            "Vehicle",
            [
                field("plate", "Plate", "ABC123"),
                field("model", "Model", "Karin Sultan"),
                field("color", "Color", "Red"),
                field("status", "Status", "STOLEN", "select"),
                field("expiration", "Expiration", "2027-03-01", "date"),
            ],
        ),
        section("Owner", [*person("Jane", "Doe", "Q")], category=3),
    ),
    record(
        WARRANT,
        "Arrest Warrant",
        flags("ARMED", "DANGEROUS"),
        section(
            "Warrant",
            [
                *person("Jane", "Doe", "Q"),
                field("status", "Status", "0", "select"),
                field("charges", "Charges", "Armed robbery (PC 211)"),
                field("issued", "Issued", "11/30/2026", "date"),
            ],
        ),
    ),
    record(
        BOLO,
        "BOLO",
        flags("STOLEN VEHICLE"),
        section(
            "BOLO",
            [
                field("plate", "Plate", "ABC123"),
                *person("Jane", "Doe", "Q"),
                field("status", "Status", "0", "select"),
                field("description", "Description", "Red Sultan taken at gunpoint, Vinewood Blvd"),
            ],
        ),
    ),
    character("John", "Smith", "", "1985-07-01"),
    record(
        LICENSE,
        "Driver License",
        section(
            "License",
            [
                *person("John", "Smith"),
                field("status", "Status", "VALID", "select"),
                field("expiration", "Expiration", "2028-05-05", "date"),
            ],
        ),
    ),
    record(
        REGISTRATION,
        "Vehicle Registration",
        section(
            "Vehicle",
            [
                field("plate", "Plate", "XYZ 789"),
                field("model", "Model", "Vapid Stanier"),
                field("status", "Status", "VALID", "select"),
            ],
        ),
        section("Owner", [*person("John", "Smith")], category=3),
    ),
    record(
        WARRANT,
        "Arrest Warrant",
        section(
            "Warrant",
            [
                *person("John", "Smith"),
                field("status", "Status", "1", "select"),
                field("charges", "Charges", "Unpaid fines"),
            ],
        ),
    ),
    # every text hostile but the name it is found by: mentions, markdown, a masked link, a heading
    record(
        CHARACTER,
        "@everyone <@&123> **Wanted**",
        section(
            "Civilian",
            [*person("Mallory", "Hacker"), field("dob", "Date of Birth", "# 2000-01-01", "date")],
        ),
        section(
            "Notes <@111>",
            [field("notes", "Notes <@111>", "[free nitro](https://evil.example) ||spoiler|| `code` @here\n> quoted")],
        ),
    ),
]


def owner(item: dict[str, Any]) -> tuple[str, str]:
    values = _values(item)
    return values.get("first", "").casefold(), values.get("last", "").casefold()


def _values(item: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for sec in item.get("sections", []):
        for f in sec.get("fields", []):
            if isinstance(f.get("value"), str) and f["uid"] not in out:
                out[f["uid"]] = f["value"]
    return out


def _same(wanted: str, value: str, partial: bool) -> bool:
    wanted, value = wanted.strip().casefold(), value.strip().casefold()
    return value.startswith(wanted) if partial else value == wanted


def _plate(text: str) -> str:
    return "".join(text.split()).casefold()


def matches(records: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a valid lookup body finds (see the module's docstring)."""
    partial = body.get("partial") is True
    types = set(body["types"]) | {CHARACTER}
    body = {key: str(body.get(key, "")) for key in NAME_KEYS}
    found = []
    for item in records:
        values = _values(item)
        if body["plate"].strip():
            hit = (
                _plate(values.get("plate", "")) == _plate(body["plate"])
                if not partial
                else _plate(values.get("plate", "")).startswith(_plate(body["plate"]))
            )
        else:
            hit = all(
                _same(body[key], values.get(key, ""), partial) for key in ("first", "last", "mi") if body[key].strip()
            )
        if hit:
            found.append(item)
    owners = {owner(item) for item in found if owner(item) != ("", "")}
    out = [item for item in records if item in found or owner(item) in owners]
    return [item for item in out if item["type"] in types]


def lookup_problem(body: Any, *, all_keys: bool) -> str | None:
    """Why Sonoran refuses this body with a 400 (None: it is well formed). v1 wants all four text
    keys present (`all_keys`); v2 takes them left out. Both want one non-blank and `types`."""
    if not isinstance(body, dict):
        return "INVALID EMPTY SEARCH"
    for key in NAME_KEYS:
        if key not in body and all_keys:
            return "INVALID EMPTY SEARCH"
        if not isinstance(body.get(key, ""), str):
            return f"{key} must be a string"
    if not any(str(body.get(key, "")).strip() for key in NAME_KEYS):
        return "INVALID EMPTY SEARCH"
    types = body.get("types")
    if (
        not isinstance(types, list)
        or not types
        or not all(isinstance(t, int) and not isinstance(t, bool) for t in types)
    ):
        return "types must be a list of record type numbers"
    if "partial" in body and not isinstance(body["partial"], bool):
        return "partial must be a boolean"
    return None
