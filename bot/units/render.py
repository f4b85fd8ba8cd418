"""Pure functions: a panic alert and a unit board as Discord embeds. No I/O, no bot state.

Unit numbers, names, departments and locations come from players: all of it goes through
`clean()`, so nothing in them formats text or pings anyone.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping

import discord

from ..embeds import DESCRIPTION_LIMIT, clean, from_unix, timestamp
from ..sonoran.models import CallId, ServerId, Unit
from ..sonoran.numbers import UNKNOWN
from .records import Alert

PANIC_COLOUR = discord.Colour.red()
CLEARED_COLOUR = discord.Colour.dark_grey()
BOARD_COLOUR = discord.Colour.dark_teal()
PAGE_BUDGET = 3_900  # characters of one board page's description (Discord allows 4,096)
MAX_PAGES = 5  # messages of one board; past them, a summary line
Labeller = Callable[[int], str]


def unit_name(unit: Unit) -> str:
    """`1A-12 J. Smith`, or the identifier's number while the CAD has not said more."""
    number = clean(unit.data.unit_num, 20, empty="")
    name = clean(unit.data.name, 60, empty="")
    return " ".join(part for part in (number, name) if part) or f"unit #{unit.id}"


def alert_who(alert: Alert) -> str:
    """Whose panic: the unit, or how many units a storm's summary lists."""
    if alert.members is not None:
        return f"{len(alert.members)} more units"
    return unit_name(alert.unit)


def alert_content(alert: Alert, role_id: int) -> str:
    """The alert message's text: the role's mention (the one ping the bot may send) and who."""
    who = alert_who(alert)
    return f"<@&{role_id}> PANIC: {who}" if role_id else f"PANIC: {who}"


def summary_embed(alert: Alert) -> discord.Embed:
    """A panic storm's summary: the units past the cap, those still in panic first."""
    members = alert.members or ()
    cleared = alert.cleared_at is not None
    still = [unit for unit in members if unit.is_panic]
    title = f"{'Panics cleared' if cleared else '🚨 PANIC'}: {len(members)} more units"
    embed = discord.Embed(title=title, colour=CLEARED_COLOUR if cleared else PANIC_COLOUR)
    lines = [
        f"Pressed {timestamp(from_unix(alert.started_at), 'R')}, past the cap of alerts of their own: one "
        "alert for all of them (the unit board shows each).",
        f"**Still in panic ({len(still)})**" if not cleared else "**All cleared**",
    ]
    budget = PAGE_BUDGET - 400
    order = sorted(members, key=lambda unit: (not unit.is_panic, unit.data.unit_num, unit.id))
    for index, unit in enumerate(order):
        line = f"• {unit_name(unit)}" + ("" if unit.is_panic else " (cleared)")
        if sum(len(text) + 1 for text in lines) + len(line) > budget:
            lines.append(f"… and {len(order) - index} more")
            break
        lines.append(line)
    lines.append(_acknowledgement(alert, cleared))
    embed.description = "\n".join(lines)
    embed.set_footer(text=f"CAD server {alert.server_id} · {len(members)} identifiers")
    embed.timestamp = from_unix(alert.started_at)
    return embed


def _acknowledgement(alert: Alert, cleared: bool) -> str:
    if alert.acked_by:
        when = f" {timestamp(from_unix(alert.acked_at), 'R')}" if alert.acked_at else ""
        return f"Acknowledged by {clean(alert.acked_by, 80)}{when}"
    return "Nobody acknowledged it" if cleared else "Not acknowledged yet"


def alert_embed(alert: Alert) -> discord.Embed:
    if alert.members is not None:
        return summary_embed(alert)
    unit = alert.unit
    cleared = alert.cleared_at is not None
    title = f"{'Panic cleared' if cleared else '🚨 PANIC'}: {unit_name(unit)}"
    embed = discord.Embed(title=title[:256], colour=CLEARED_COLOUR if cleared else PANIC_COLOUR)
    department = " · ".join(clean(text, 60) for text in (unit.data.department, unit.data.subdivision) if text.strip())
    embed.add_field(name="Department", value=department or "—", inline=True)
    embed.add_field(name="Location", value=clean(unit.location or unit.aop, 200), inline=True)
    embed.add_field(name="Call", value=clean(alert.call, 200) if alert.call else "none", inline=True)
    lines = [f"Pressed {timestamp(from_unix(alert.started_at), 'R')}"]
    if alert.cleared_at is not None:
        lines.append(f"Cleared {timestamp(from_unix(alert.cleared_at), 't')}")
    lines.append(_acknowledgement(alert, cleared))
    embed.description = "\n".join(lines)
    embed.set_footer(text=f"CAD server {alert.server_id} · identifier #{unit.id}")
    embed.timestamp = from_unix(alert.started_at)
    return embed


MAX_LINES = MAX_PAGES * PAGE_BUDGET // 8  # more unit lines than MAX_PAGES pages can hold
MAX_STATUS_GROUPS = 12  # statuses with a heading of their own; the rest share "Other statuses"
UNCONFIRMED = "⚠️ Not yet confirmed by the CAD's units list: what the bot has heard so far."


def board_lines(
    units: Mapping[int, Unit], calls: Mapping[int, CallId], label: Labeller, *, most: int = MAX_LINES
) -> list[str]:
    """The board's lines: units in panic first, then by status (in the order of the community's
    labels, a status the CAD sent that could not be read last), each group under its heading (with
    its full count), each unit with its number, name, department and call. At most `most` unit
    lines: only those are sorted and formatted, so a board of 100,000 units costs one pass over
    them, not a sort and a format of each."""
    panic: list[Unit] = []
    by_status: dict[int, list[Unit]] = {}
    for unit in units.values():
        if unit.is_panic:
            panic.append(unit)
        else:
            by_status.setdefault(unit.status, []).append(unit)
    groups: dict[str, list[Unit]] = {"🚨 PANIC": panic} if panic else {}
    statuses = sorted(by_status, key=lambda s: (s == UNKNOWN, s))
    for rank, status in enumerate(statuses):
        if status == UNKNOWN:
            heading = "Unknown status"
        elif rank < MAX_STATUS_GROUPS:
            heading = label(status)
        else:  # a CAD (or a key holder) with thousands of distinct statuses: one group, not thousands
            heading = "Other statuses"
        groups.setdefault(heading, []).extend(by_status[status])
    lines: list[str] = []
    left = most
    for heading, members in groups.items():
        lines.append(f"**{clean(heading, 50)}** ({len(members)})")
        shown = (
            heapq.nsmallest(max(0, left), members, key=_order) if len(members) > left else sorted(members, key=_order)
        )
        lines.extend(_unit_line(unit, calls.get(unit.id)) for unit in shown)
        left -= len(shown)
    return lines


def _order(unit: Unit) -> tuple[int, str, int]:
    return (unit.status, unit.data.unit_num, unit.id)


def _unit_line(unit: Unit, call_id: CallId | None) -> str:
    # bold, not a code span: inside one, the escapes that keep player text inert would show
    parts = [f"**{clean(unit.data.unit_num, 20, empty='#' + str(unit.id))}**"]
    if unit.data.name.strip():
        parts.append(clean(unit.data.name, 40))
    if unit.data.department.strip():
        parts.append(clean(unit.data.department, 30))
    if call_id is not None:
        parts.append(f"on call #{call_id}")
    return "• " + " · ".join(parts)


def board_pages(
    server_id: ServerId,
    units: Mapping[int, Unit],
    calls: Mapping[int, CallId],
    label: Labeller,
    *,
    confirmed: bool = True,
) -> list[discord.Embed]:
    """The board as pages, one embed a message, each within Discord's limits: as many pages as the
    lines need, up to MAX_PAGES; past that, the last page says how many units are not listed.
    `confirmed=False`: no whole read of the list yet (the units come from events, or part of it)."""
    lines = board_lines(units, calls, label)
    in_panic = bool(lines) and lines[0].startswith("**🚨 PANIC**")
    if not confirmed:
        lines.insert(0, UNCONFIRMED)
    pages: list[list[str]] = [[]]
    sizes = [0]
    full = False
    for line in lines:
        if sizes[-1] + len(line) + 1 > PAGE_BUDGET:
            if len(pages) == MAX_PAGES:
                full = True
                break
            pages.append([])
            sizes.append(0)
        pages[-1].append(line)
        sizes[-1] += len(line) + 1
    listed = sum(1 for page in pages for line in page if line.startswith("• "))
    if full or listed < len(units):
        while sizes[-1] + 80 > PAGE_BUDGET:  # room for the summary line
            line = pages[-1].pop()
            sizes[-1] -= len(line) + 1
            listed -= line.startswith("• ")
        pages[-1].append(f"… and {len(units) - listed} more units on duty, not listed (Discord's limits)")
    title = f"Units on duty · CAD server {server_id}"
    footer = "" if confirmed else " · not yet confirmed by the CAD's units list"
    embeds = []
    for index, page in enumerate(pages, start=1):
        embed = discord.Embed(
            title=title if index == 1 else f"{title} (continued)",
            description="\n".join(page)[:DESCRIPTION_LIMIT] or "No units on duty.",
            colour=PANIC_COLOUR if in_panic else BOARD_COLOUR,
        )
        embed.set_footer(text=f"{len(units)} on duty · page {index} of {len(pages)}{footer}")
        embeds.append(embed)
    return embeds
