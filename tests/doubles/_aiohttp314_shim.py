"""aioresponses 0.7.9 builds ClientResponse without the `stream_writer` argument that aiohttp 3.14
made required (pnuckowski/aioresponses#289, fix unmerged). We do not pin aiohttp below 3.14
because 3.14.0 was a security release (GHSA-jg22-mg44-37j8); instead the tests give aioresponses
a default for that one argument. This is a no-op on aiohttp < 3.14, and test-only code.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core

if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:

    class _CompatResponse(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # the response only reads `output_size` from it; a Mock would cost ~1 ms per request
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _CompatResponse  # type: ignore[attr-defined,misc,unused-ignore]
