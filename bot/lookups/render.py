"""Pure functions: lookup records as embed pages, as the member who asked may see them. No I/O.

- What matters on a stop comes first: an active warrant, an active BOLO, a suspended or expired
  license, a registration flagged stolen, expired, pending or suspended. The first page opens with
  them, and the records that carry them come before the others.
- Fields are shown as Sonoran's own webhooks show them: a field or section that its `dependency`
  hides is left out, and so is a field marked `isSupervisor` unless the member's CAD account holds
  the supervisor permission of that record's family (`supervisor_of`). Flags are read from what is
  shown only. Dates stay as the CAD wrote them.
- Every text from the CAD goes through `clean()`: nothing in a record formats text or pings anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import discord

from ..embeds import DESCRIPTION_LIMIT, clean, truncate
from ..sonoran import LookupRecord, RecordField, RecordSection
from ..sonoran.records import FLAGS_SECTION, Dependency

PAGE_BUDGET = 3_800  # characters of one page's description (Discord allows 4,096)
RECORD_BUDGET = 1_200  # characters of one record's block; past that, the rest is counted, not shown
VALUE_LIMIT = 200
SUMMARY_LINES = 8  # alerts listed on the first page; each record shows its own below
FLAG_COLOUR = discord.Colour.red()
CLEAR_COLOUR = discord.Colour.dark_green()

TYPE_LABELS = {2: "Warrant", 3: "BOLO", 4: "License", 5: "Registration", 7: "Character"}
ORDER = {2: 0, 3: 1, 5: 2, 4: 3, 7: 4}  # flagged records first, then in this order
CLOSED_STATUSES = frozenset({"1", "CLOSED", "INACTIVE", "SERVED", "CLEARED", "CANCELLED", "CANCELED"})
WARRANT_STATUS = {"0": "Active", "1": "Closed"}  # a warrant's or BOLO's `status`
LICENSE_FLAGS = frozenset({"SUSPENDED", "EXPIRED", "REVOKED"})
REGISTRATION_FLAGS = frozenset({"STOLEN", "EXPIRED", "PENDING", "SUSPENDED"})  # as the FiveM resource flags them


def depends_ok(dependency: Dependency | None, values: dict[str, str]) -> bool:
    """Whether a field or section with this dependency is shown (an unknown rule hides it)."""
    if dependency is None:
        return True
    value = values.get(dependency.fid, "")
    if dependency.kind == "EQUAL":
        return value in dependency.values
    if dependency.kind == "NOTEQUAL":
        return value not in dependency.values
    if dependency.kind == "CONTAINS":
        return any(wanted and wanted in value for wanted in dependency.values)
    return False


# Which supervisor permission opens a record's `isSupervisor` fields, by record type. Sonoran's
# POLSUPER "modifies police record supervisor fields" and DMVSUPER the DMV's; the other types'
# families are not documented: an assumption, kept to the strictest reading (police supervisors).
SUPERVISOR_OF_TYPE = {4: "dmvSuper", 5: "dmvSuper"}
DEFAULT_SUPERVISOR = "polSuper"


def supervisor_of(record: LookupRecord) -> str:
    """The permission whose holders see this record's supervisor fields."""
    return SUPERVISOR_OF_TYPE.get(record.type or 0, DEFAULT_SUPERVISOR)


def visible(record: LookupRecord, *, supervises: frozenset[str]) -> list[tuple[RecordSection, list[RecordField]]]:
    """The sections and fields the member may see, in the record's order: a supervisor field only
    to a supervisor of that record's family (a fire supervisor does not see a police record's)."""
    values = record.values()
    may_see_supervised = supervisor_of(record) in supervises
    out = []
    for section in record.sections:
        if not depends_ok(section.dependency, values):
            continue
        fields = [
            f for f in section.fields if depends_ok(f.dependency, values) and (may_see_supervised or not f.supervisor)
        ]
        if fields:
            out.append((section, fields))
    return out


@dataclass(frozen=True)
class Shown:
    """One record as this member sees it: what matters on a stop, and its lines."""

    record: LookupRecord
    alerts: tuple[str, ...]  # "ACTIVE WARRANT: ARMED, DANGEROUS", "REGISTRATION STOLEN", ...
    heading: str
    lines: tuple[str, ...]


def _subject(kind: int | None, values: dict[str, str]) -> str:
    """Whom or what a record is about: the plate for a registration or a BOLO that names one."""
    name = " ".join(values.get(key, "").strip() for key in ("first", "mi", "last") if values.get(key, "").strip())
    plate = values.get("plate", "").strip()
    if kind in (3, 5) and plate:
        return plate
    return name or plate


def show(record: LookupRecord, *, supervises: frozenset[str]) -> Shown:
    parts = visible(record, supervises=supervises)
    values = {f.uid: f.value for _, fields in parts for f in fields if f.uid}
    flag_words = [
        flag for section, fields in parts if section.category == FLAGS_SECTION for f in fields for flag in f.flags
    ]
    status = values.get("status", "").strip().upper()
    alerts: list[str] = []
    if record.type in (2, 3) and status not in CLOSED_STATUSES:
        what = "ACTIVE WARRANT" if record.type == 2 else "ACTIVE BOLO"
        alerts.append(f"{what}: {', '.join(flag_words)}" if flag_words else what)
    elif record.type == 4 and status in LICENSE_FLAGS:
        alerts.append(f"LICENSE {status}")
    elif record.type == 5 and status in REGISTRATION_FLAGS:
        alerts.append(f"REGISTRATION {status}")
    kind = TYPE_LABELS.get(record.type or 0) or record.name or "Record"
    subject = _subject(record.type, values)
    heading = f"{kind}: {subject}" if subject else kind
    if record.name and record.name.casefold() != kind.casefold():
        heading += f" — {record.name}"
    lines: list[str] = []
    for section, fields in parts:
        if section.category == FLAGS_SECTION:
            continue
        for f in fields:
            text = f.value or f.linked or ", ".join(f.flags)
            if record.type in (2, 3) and f.uid == "status":
                text = WARRANT_STATUS.get(text.strip(), text)  # Sonoran stores 0 and 1
            if text.strip():
                label = clean(f.label or f.uid, 60)
                lines.append(f"{label}: {clean(' '.join(text.split()), VALUE_LIMIT)}")
    if flag_words and not alerts:
        lines.insert(0, f"Flags: {clean(', '.join(flag_words), VALUE_LIMIT)}")
    return Shown(record, tuple(alerts), heading, tuple(lines))


def _block(shown: Shown) -> str:
    head = f"**{clean(shown.heading, 150)}**"
    if shown.alerts:
        head = "🚨 " + head + " · " + " · ".join(f"**{clean(a, 150)}**" for a in shown.alerts)
    lines = [head]
    size = len(head)
    for index, line in enumerate(shown.lines):
        if size + len(line) + 1 > RECORD_BUDGET:
            lines.append(f"… {len(shown.lines) - index} more field(s)")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def arranged(records: Sequence[LookupRecord], *, supervises: frozenset[str]) -> list[Shown]:
    """The records as shown, those with something that matters on a stop first (warrants, BOLOs,
    registrations, licenses), then the others in the same order of kinds; the CAD's order within."""
    shown = [show(record, supervises=supervises) for record in records]
    return sorted(shown, key=lambda s: (not s.alerts, ORDER.get(s.record.type or 0, 9)))


def lookup_pages(title: str, records: Sequence[LookupRecord], *, supervises: frozenset[str]) -> list[discord.Embed]:
    """The answer as pages (one embed each, within Discord's limits): the first opens with what
    matters on a stop, then the records, flagged ones first. `title` is the query, already clean."""
    shown = arranged(records, supervises=supervises)
    alerts = [f"🚨 {clean(a, 150)} · {clean(s.heading, 100)}" for s in shown for a in s.alerts]
    summary = "**On a stop:** nothing flagged."
    if alerts:
        listed = alerts[:SUMMARY_LINES]
        if len(alerts) > SUMMARY_LINES:
            listed.append(f"… and {len(alerts) - SUMMARY_LINES} more, below")
        summary = "**On a stop:**\n" + "\n".join(listed)
    pages: list[list[str]] = [[summary]]
    sizes = [len(summary)]
    for item in shown:
        block = truncate(_block(item), PAGE_BUDGET)
        if sizes[-1] + len(block) + 2 > PAGE_BUDGET:
            pages.append([])
            sizes.append(0)
        pages[-1].append(block)
        sizes[-1] += len(block) + 2
    colour = FLAG_COLOUR if alerts else CLEAR_COLOUR
    embeds = []
    for index, page in enumerate(pages, start=1):
        embed = discord.Embed(
            title=truncate(f"Lookup: {title}", 200),
            description="\n\n".join(page)[:DESCRIPTION_LIMIT],
            colour=colour,
        )
        embed.set_footer(text=f"{len(records)} record(s) · page {index} of {len(pages)} · only you see this")
        embeds.append(embed)
    return embeds
