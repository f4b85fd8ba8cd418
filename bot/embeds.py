"""Pure functions: call data in, `discord.Embed` or text out. No I/O, no bot state.

Everything that came from a player or the CAD goes through `clean()`: markdown and mentions are
escaped (so `@everyone` or `<@&123>` in a description shows as text and pings nobody, even
before allowed_mentions), and Discord's length limits are met by visible truncation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import discord

from .sonoran.models import CallList, CallStatus, DispatchCall, EmergencyCall, Origin

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
FIELDS_PER_EMBED = 25
EMBED_TOTAL_LIMIT = 6000
CHOICE_NAME_LIMIT = 100
ELLIPSIS = "…"

EMERGENCY_COLOUR = discord.Colour.red()
CIVIL_COLOUR = discord.Colour.orange()
DISPATCH_COLOUR = discord.Colour.blue()
ENDED_COLOUR = discord.Colour.dark_grey()
LIST_COLOUR = discord.Colour.blurple()

PRIORITY_LABELS = {1: "P1 (high)", 2: "P2", 3: "P3 (low)"}
# metaData keys worth showing dispatchers, with their labels
METADATA_LABELS = {"postal": "Postal", "plate": "Plate", "code": "Code", "block": "Block", "priority": "Priority"}


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    if cut.endswith("\\"):  # never leave half an escape behind
        cut = cut[:-1]
    return cut + ELLIPSIS


def clean(text: Any, limit: int, *, empty: str = "—") -> str:
    """Player or CAD text, safe to show: markdown and mentions escaped, within `limit`."""
    raw = "" if text is None else str(text)
    raw = " ".join(raw.split()) if limit <= CHOICE_NAME_LIMIT else raw.strip()
    if not raw:
        return empty
    escaped = discord.utils.escape_mentions(discord.utils.escape_markdown(raw))
    return truncate(escaped, limit)


def plain(text: Any, limit: int) -> str:
    """For places Discord never renders markdown (autocomplete labels): just one line, bounded."""
    return truncate(" ".join(("" if text is None else str(text)).split()), limit)


def timestamp(when: dt.datetime, style: str = "R") -> str:
    return discord.utils.format_dt(when, style)  # type: ignore[arg-type]


def from_unix(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def call_label(call: EmergencyCall | DispatchCall) -> str:
    """Autocomplete label: `#1042 · Armed robbery · Mission Row` (title or caller, then place)."""
    if isinstance(call, DispatchCall):
        what = call.title or call.code or "Dispatch call"
        where = call.address or call.postal
    else:
        what = call.caller or ("Emergency call" if call.is_emergency else "Civil call")
        where = call.location
    parts = [f"#{call.call_id}", what] + ([where] if where else [])
    return plain(" · ".join(parts), CHOICE_NAME_LIMIT)


def _number(value: Any) -> str:
    """Coordinates: numbers as they are (escaping would turn -8 into \\-8), anything else cleaned."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return clean(value, 20)


def _metadata_lines(metadata: dict[str, Any]) -> list[str]:
    lines = [
        f"**{label}:** {clean(metadata[key], 100)}"
        for key, label in METADATA_LABELS.items()
        if metadata.get(key) not in (None, "")
    ]
    if metadata.get("x") not in (None, "") and metadata.get("y") not in (None, ""):
        coords = ", ".join(_number(metadata[k]) for k in ("x", "y", "z") if metadata.get(k) not in (None, ""))
        lines.append(f"**Coordinates:** {coords}")
    return lines


def emergency_embed(
    call: EmergencyCall,
    *,
    server_id: int,
    first_seen: dt.datetime,
    state: str = "active",
    ended_at: dt.datetime | None = None,
    removed_by: str | None = None,
) -> discord.Embed:
    """A 911 call as the feed shows it. `state`: active, answered (now a dispatch call) or removed."""
    kind = "EMERGENCY" if call.is_emergency else "CIVIL"
    colour = EMERGENCY_COLOUR if call.is_emergency else CIVIL_COLOUR
    title = f"{'🚨' if call.is_emergency else '📞'} {kind} 911 call #{call.call_id}"
    if state != "active":
        colour = ENDED_COLOUR
        title = f"{kind} 911 call #{call.call_id} ({'answered' if state == 'answered' else 'removed'})"
    embed = discord.Embed(
        title=truncate(title, TITLE_LIMIT),
        description=clean(call.description, DESCRIPTION_LIMIT // 2),
        colour=colour,
        timestamp=first_seen,
    )
    embed.add_field(name="Caller", value=clean(call.caller, FIELD_VALUE_LIMIT), inline=True)
    embed.add_field(name="Location", value=clean(call.location, FIELD_VALUE_LIMIT), inline=True)
    details = _metadata_lines(call.metadata)
    if details:
        embed.add_field(name="Details", value=truncate("\n".join(details), FIELD_VALUE_LIMIT), inline=False)
    status = f"Received {timestamp(first_seen)}"
    if state == "answered" and ended_at:
        status += f"\nAnswered by dispatch {timestamp(ended_at)}"
    elif state == "removed" and ended_at:
        who = f" by {clean(removed_by, 100)}" if removed_by else ""
        status += f"\nRemoved{who} {timestamp(ended_at)}"
    embed.add_field(name="Status", value=status, inline=False)
    embed.set_footer(text=truncate(f"CAD server {server_id} · {kind.title()} call", FOOTER_LIMIT))
    return embed


def dispatch_embed(
    call: DispatchCall,
    *,
    server_id: int,
    first_seen: dt.datetime,
    closed: bool = False,
    ended_at: dt.datetime | None = None,
) -> discord.Embed:
    closed = closed or call.status == CallStatus.CLOSED
    heading = f"Dispatch call #{call.call_id}: {call.title or call.code or 'untitled'}"
    embed = discord.Embed(
        title=clean(heading + (" (closed)" if closed else ""), TITLE_LIMIT),
        description=clean(call.description, 1500, empty="") or None,
        colour=ENDED_COLOUR if closed else DISPATCH_COLOUR,
        timestamp=first_seen,
    )
    where = ", ".join(part for part in (call.address, call.block) if part)
    embed.add_field(name="Location", value=clean(where, 300), inline=True)
    if call.postal:
        embed.add_field(name="Postal", value=clean(call.postal, 50), inline=True)
    embed.add_field(name="Priority", value=PRIORITY_LABELS.get(call.priority, str(call.priority)), inline=True)
    status = "Closed" if closed else CallStatus.label(call.status)
    if closed and ended_at:
        status += f" {timestamp(ended_at)}"
    embed.add_field(name="Status", value=status, inline=True)
    if call.code:
        embed.add_field(name="Code", value=clean(call.code, 100), inline=True)
    embed.add_field(name="Units", value=str(len(call.idents)) if call.idents else "none attached", inline=True)
    if call.notes:
        shown = call.notes[-5:]
        lines = [f"**{clean(n.label, 60, empty='?')}:** {clean(n.content, 300)}" for n in shown]
        more = len(call.notes) - len(shown)
        name = f"Notes ({len(call.notes)})" + (f", latest {len(shown)}" if more else "")
        embed.add_field(name=name, value=truncate("\n".join(lines), FIELD_VALUE_LIMIT), inline=False)
    embed.set_footer(text=f"CAD server {server_id} · Origin: {Origin.label(call.origin)}")
    return embed


def _list_entry(call: EmergencyCall | DispatchCall) -> tuple[str, str]:
    if isinstance(call, EmergencyCall):
        kind = "🚨 Emergency" if call.is_emergency else "📞 Civil"
        name = f"#{call.call_id} · {kind} 911 · {plain(call.caller or 'unknown caller', 80)}"
        value = f"**Location:** {clean(call.location, 200)}\n{clean(call.description, 400)}"
    else:
        status = CallStatus.label(call.status)
        name = f"#{call.call_id} · {plain(call.title or call.code or 'Dispatch call', 120)} · {status}"
        where = clean(", ".join(p for p in (call.address, call.postal) if p), 200)
        value = f"**Location:** {where} · **{PRIORITY_LABELS.get(call.priority, call.priority)}**"
        if call.idents:
            value += f" · {len(call.idents)} unit(s)"
        if call.description:
            value += "\n" + clean(call.description, 300)
    # Field names are not rendered as markdown-safe titles by every client: escape them too.
    return clean(name, FIELD_NAME_LIMIT), truncate(value, FIELD_VALUE_LIMIT)


def calls_for_kind(calls: CallList, kind: str) -> list[EmergencyCall | DispatchCall]:
    chosen: list[EmergencyCall | DispatchCall] = []
    if kind in ("all", "emergency"):
        chosen.extend(calls.emergency)
    if kind in ("all", "dispatch"):
        chosen.extend(calls.active)
    if kind == "closed":
        chosen.extend(calls.closed)
    return chosen


KIND_TITLES = {
    "all": "Active calls",
    "emergency": "Active 911 calls",
    "dispatch": "Active dispatch calls",
    "closed": "Closed calls",
}


def call_list_pages(
    entries: Sequence[EmergencyCall | DispatchCall],
    *,
    title: str,
    server_id: int,
    as_of: dt.datetime,
    per_page: int = 10,
) -> list[discord.Embed]:
    """Embeds of at most `per_page` calls each, every one within Discord's limits."""
    fields = [_list_entry(call) for call in entries]
    pages: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    budget = EMBED_TOTAL_LIMIT - len(title) - 200  # room for title, description and footer
    for name, value in fields:
        cost = len(name) + len(value)
        if current and (len(current) >= min(per_page, FIELDS_PER_EMBED) or size + cost > budget):
            pages.append(current)
            current, size = [], 0
        current.append((name, value))
        size += cost
    if current or not pages:
        pages.append(current)
    embeds = []
    for index, page in enumerate(pages, start=1):
        embed = discord.Embed(title=truncate(title, TITLE_LIMIT), colour=LIST_COLOUR, timestamp=as_of)
        embed.description = (
            f"{len(entries)} call(s) on CAD server {server_id} · as of {timestamp(as_of)}"
            if entries
            else f"No calls on CAD server {server_id} right now · as of {timestamp(as_of)}"
        )
        for name, value in page:
            embed.add_field(name=name, value=value, inline=False)
        embed.set_footer(text=f"Page {index} of {len(pages)}")
        embeds.append(embed)
    return embeds
