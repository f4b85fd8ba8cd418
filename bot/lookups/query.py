"""The member's input, checked before anything is sent: Sonoran denies every API call of a community
for a while after repeated malformed requests (the game server's included), so a lookup that
could be malformed is refused here, in one plain sentence, and never reaches the CAD."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..sonoran import LookupQuery
from .errors import BadLookup

NAME_LIMIT = 30  # characters of a first or last name
PLATE_LIMIT = 10  # characters of a plate (GTA's are 8; some communities space or dash them)
_PLATE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 -]*[A-Za-z0-9])?")
_NAME_MARKS = frozenset(" '-.")


def _tidy(text: str | None) -> str:
    return " ".join((text or "").split())


def _name(what: str, text: str | None) -> str:
    name = _tidy(text)
    if len(name) > NAME_LIMIT:
        raise BadLookup(f"The {what} is over {NAME_LIMIT} characters.")
    if any(not (c.isalpha() or c in _NAME_MARKS) for c in name):
        raise BadLookup(f"The {what} may hold only letters, spaces, apostrophes, dots and dashes.")
    return name


def name_query(
    first: str | None, last: str | None, mi: str | None, *, types: Sequence[int], partial: bool
) -> LookupQuery:
    """A name lookup: a first or a last name at least; the middle initial one letter."""
    first_name, last_name = _name("first name", first), _name("last name", last)
    initial = _tidy(mi).rstrip(".")
    if len(initial) > 1 or (initial and not initial.isalpha()):
        raise BadLookup("The middle initial is one letter.")
    if not first_name and not last_name:
        raise BadLookup("Give a first or a last name to look up.")
    return LookupQuery(first=first_name, last=last_name, mi=initial, types=tuple(types), partial=partial)


def plate_query(plate: str | None, *, types: Sequence[int], partial: bool) -> LookupQuery:
    """A plate lookup: letters and digits, with spaces or dashes between them."""
    text = _tidy(plate)
    if not text:
        raise BadLookup("Give a plate to look up.")
    if len(text) > PLATE_LIMIT:
        raise BadLookup(f"A plate is at most {PLATE_LIMIT} characters.")
    if not text.isascii() or not _PLATE.fullmatch(text):
        raise BadLookup("A plate holds only letters and digits (spaces or dashes between them).")
    return LookupQuery(plate=text.upper(), types=tuple(types), partial=partial)


def describe(query: LookupQuery) -> str:
    """The query as the audit log and the reply's title name it (the member's own input, tidied)."""
    if query.plate:
        return f"plate {query.plate}"
    return "name " + " ".join(part for part in (query.first, query.mi, query.last) if part)
