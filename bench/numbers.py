"""CPU cost of reading the CAD's numbers: a GET_CALLS reply of 1,000 dispatch calls (every numeric
field set, each call validated: nothing memoised) and a units list of 100, with good values and
with one odd value (1e400, -1, 2.5, "12") in every record; and the cost of a reply holding an integer
too long for Python (the JSON read twice).

    python -m bench.numbers [--json]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bench._common import report
from bot.sonoran.models import CallList, units_from_payload

CALLS = 1_000
UNITS = 100
ODD = ["1e400", "-1", "2.5", '"12"']


def dispatch(call_id: int, odd: str | None) -> str:
    code = odd if odd is not None else "2"
    return (
        f'{{"callId": {call_id}, "origin": {code}, "status": {code}, "priority": {code}, "primary": {code}, '
        f'"idents": [1, 2, {code}], "title": "Pursuit", "address": "Route 68", "notes": [], '
        f'"metaData": {{"origin911": {code}, "x": {code}}}}}'
    )


def unit(ident: int, odd: str | None) -> str:
    code = odd if odd is not None else "2"
    return f'{{"id": {ident}, "status": {code}, "isPanic": false, "data": {{"unitNum": "1A-{ident}"}}}}'


def cost(work: Callable[[], Any], rounds: int = 20) -> float:
    """The best of `rounds` runs, in seconds of CPU time."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    figures: dict[str, object] = {}
    lines = ["reading numbers (CPU time, best of 20)"]
    for name, odd in [("good", None), *((f"odd {value}", value) for value in ODD)]:
        calls = ("{" + '"ActiveCalls": [' + ", ".join(dispatch(i, odd) for i in range(CALLS)) + "]}").encode()
        units = json.loads("[" + ", ".join(unit(i, odd) for i in range(UNITS)) + "]")
        per_call = cost(lambda body=calls: CallList.from_json(1, body)) / CALLS  # type: ignore[misc]
        per_unit = cost(lambda payload=units: units_from_payload(1, payload)) / UNITS  # type: ignore[misc]
        figures[name] = {"us_per_call": round(per_call * 1e6, 2), "us_per_unit": round(per_unit * 1e6, 2)}
        lines.append(f"  {name:<12} {per_call * 1e6:6.1f} µs per dispatch call, {per_unit * 1e6:6.1f} µs per unit")
    plain = ("{" + '"ActiveCalls": [' + ", ".join(dispatch(i, None) for i in range(CALLS)) + "]}").encode()
    huge = plain[:-1] + b', "ClosedCallCount": ' + b"9" * 5000 + b"}"
    plain_ms, huge_ms = (
        cost(lambda: CallList.from_json(1, plain)) * 1e3,
        cost(lambda: CallList.from_json(1, huge)) * 1e3,
    )
    figures["reply_ms"] = {"plain": round(plain_ms, 2), "with_5000_digits": round(huge_ms, 2)}
    lines.append(f"  a reply of {CALLS} calls: {plain_ms:.1f} ms; with one 5,000-digit integer: {huge_ms:.1f} ms")
    report(figures, lines)


if __name__ == "__main__":
    main()
