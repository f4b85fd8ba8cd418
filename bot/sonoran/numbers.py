"""Numbers as the CAD and push senders write them, read one way for every field.

JSON has one kind of number and no bounds. Python's `json` reads `1e400` as infinity and `NaN` as
NaN, keeps integers of any size (and refuses one of more than 4,300 digits, failing the whole
document), and a JavaScript sender may write `77.0` for 77. `int()` on such a value raises
OverflowError or ValueError; pydantic does not turn OverflowError into a validation error, so one
value used to fail a whole call list, units list or push request. Every numeric field of calls,
units, accounts and push events is therefore one of the types below, each with a rule for what it
cannot read:

- `Id` (a call's `callId`, a unit's identifier id): an integer 0 <= id < 2**63, also as an
  integral float (`77.0`) or ASCII digits (`"77"`). Anything else (negative, infinite, NaN,
  fractional, a bool, text, past 64 bits) makes that one record unreadable: it is left out (and
  logged once) by the list or push request it came in, and the other records are read. A record
  whose id is wrong cannot be posted, edited or matched with anything, and an id must fit a SQLite
  integer and the digits of a button's custom_id.
- `OptionalId` (a dispatch call's `primary` unit, `metaData.origin911`, an entry of `idents`,
  `ClosedCallCount`): the same reading; what it cannot read is None (a list leaves the entry out),
  and the record is kept.
- `Code` (a call's `priority`, `status` and `origin`, a unit's `status`): a small non-negative
  integer, 0 <= code < 2**31, read as an id is. What it cannot read becomes `UNKNOWN`, shown as
  "unknown" wherever a code is shown, and the record is kept: a dispatcher would rather see a
  call with its priority unknown than not see the call, and an unknown status never reads as
  "closed" (2) or "offline" (100). A missing field keeps its model's default.
- `OptionalCode` (an account's ACCOUNT_STATUS): the same reading; what it cannot read is None
  ("not known", which bars nobody and grants nothing).

`loads` is `json.loads` that also reads a document holding an integer of more than 4,300 digits
(read as infinity, which every reader above refuses), so that such a value costs its own field.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Annotated, Any

from pydantic import BeforeValidator

SQLITE_INT = 2**63  # ids are stored as SQLite integers: -2^63 <= id < 2^63
CODE_LIMIT = 2**31  # enum-ish codes are small: past this a value is no code the CAD has
UNKNOWN = -1  # a code that could not be read (a negative code reads as this too)
_DIGITS = 30  # a number written as text longer than this is no id or code


def integer(value: Any) -> int | None:
    """`value` as an exact integer when it is one: an int (not a bool), an integral finite float, or
    ASCII digits with an optional sign. Else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("-", "+") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= _DIGITS:
            return int(text)
    return None


def read_id(value: Any) -> int | None:
    """An id (0 <= id < 2**63), or None when `value` is none."""
    number = integer(value)
    return number if number is not None and 0 <= number < SQLITE_INT else None


def read_code(value: Any) -> int:
    """A code (0 <= code < 2**31), or UNKNOWN."""
    number = integer(value)
    return number if number is not None and 0 <= number < CODE_LIMIT else UNKNOWN


def read_optional_code(value: Any) -> int | None:
    code = read_code(value)
    return None if code == UNKNOWN else code


def require_id(value: Any) -> int:
    """An id, or ValueError: the record it belongs to cannot be read."""
    number = read_id(value)
    if number is None:
        raise ValueError(f"the id {_shown(value)} is not an integer from 0 to 2^63 - 1")
    return number


def ids(values: Any, most: int | None = None) -> list[int]:
    """The readable ids of a list (a single value is a list of one; null or "" is none), the first
    `most` of them at the most: a list of 95,000 is read no further."""
    if not isinstance(values, list):
        values = [] if values is None or values == "" else [values]
    return list(itertools.islice((number for number in map(read_id, values) if number is not None), most))


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, str, bool)) or value is None else type(value).__name__
    return text if len(text) <= 30 else text[:29] + "…"


Id = Annotated[int, BeforeValidator(require_id)]
OptionalId = Annotated[int | None, BeforeValidator(read_id)]
Code = Annotated[int, BeforeValidator(read_code)]
OptionalCode = Annotated[int | None, BeforeValidator(read_optional_code)]


def _bounded_int(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:  # past the interpreter's limit on digits: no field reads it as a number
        return -math.inf if text.startswith("-") else math.inf


def loads(body: bytes | str) -> Any:
    """`json.loads`, except that an integer too long for Python to convert reads as infinity
    instead of failing the whole document (ValueError still means "not JSON")."""
    try:
        return json.loads(body)
    except ValueError:
        return json.loads(body, parse_int=_bounded_int)  # slower, and only for a document that failed
