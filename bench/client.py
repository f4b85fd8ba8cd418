"""Client CPU cost per request, side by side: our SonoranClient, a bare keep-alive aiohttp loop
(the floor) and the official synchronous SDK on PyPI (`pip install -e ".[bench]"`, import
`sonoran`). Each does 500 v2 get-calls (50 dispatch + 50 emergency calls in the list) and 100
file-911 requests against a fresh fake CAD in its own process. CPU time of this process is
reported, because the Python fake CAD bounds wall-clock rates.

    python -m bench.client [--json]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from bench._common import cad_process, report
from bot.services import sonoran_client
from tests.doubles.fake_cad import API_KEY
from tests.helpers import make_settings

GETS = 500
POSTS = 100
WARMUP = 20
BODY = {"isEmergency": True, "caller": "Bench", "location": "Route 68", "description": "Benchmark call"}
QUERY = {"closedLimit": "10", "closedOffset": "0", "type": "100"}


async def measure(
    run_get: Callable[[], Awaitable[object]], run_post: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    for _ in range(WARMUP):
        await run_get()
    start = time.process_time()
    for _ in range(GETS):
        await run_get()
    gets = (time.process_time() - start) / GETS
    start = time.process_time()
    for _ in range(POSTS):
        await run_post()
    return gets, (time.process_time() - start) / POSTS


async def ours(url: str) -> tuple[float, float]:
    limits = {op: 100_000 for op in ("get_calls", "call_911", "get_version", "get_servers")}
    settings = make_settings(url, 2, sonoran={"rate_limits": limits})
    async with aiohttp.ClientSession() as session:
        client = sonoran_client(session, settings.cad)

        async def get() -> object:
            return await client.get_calls(1)

        async def post() -> object:
            return await client.file_911(caller="Bench", location="Route 68", description="Benchmark call")

        return await measure(get, post)


async def floor(url: str) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def get() -> object:
            async with session.get(f"{url}/v2/emergency/servers/1/calls", params=QUERY) as response:
                return await response.json()

        async def post() -> object:
            async with session.post(f"{url}/v2/emergency/servers/1/calls/911", json=BODY) as response:
                return await response.json()

        return await measure(get, post)


async def sdk(url: str) -> tuple[float, float] | None:
    try:
        import sonoran  # type: ignore[import-not-found]
    except ImportError:
        return None
    instance = sonoran.Instance(
        apiKey=API_KEY, communityId="testcad", product=sonoran.productEnums.CAD, cadApiUrl=url, serverId=1
    )

    async def get() -> object:
        result = instance.cad.getCallsV2({"serverId": 1, "closedLimit": 10, "closedOffset": 0, "type": 100})
        assert result.success, result.reason
        return result

    async def post() -> object:
        result = instance.cad.createEmergencyCallV2({"serverId": 1, **BODY})
        assert result.success, result.reason
        return result

    return await measure(get, post)


async def main() -> None:
    results: dict[str, tuple[float, float] | None] = {}
    for churn in (False, True):
        for name, contender in (("ours", ours), ("floor", floor), ("sdk", sdk)):
            with cad_process(emergency=50, dispatch=50, churn=churn) as url:
                results[f"{name}_changing" if churn else name] = await contender(url)
    lines = [
        f"client CPU time per request ({GETS} get-calls with 100 calls listed, {POSTS} file-911)",
        "the list unchanged between requests (an idle poll), then changed before every request:",
        f"{'':<34}{'get-calls':>12}{'file-911':>12}",
    ]
    labels = {
        "ours": "ours (SonoranClient)",
        "floor": "floor (bare aiohttp keep-alive)",
        "sdk": "official SDK (sonoran-py, urllib)",
    }
    figures: dict[str, object] = {}
    for name, value in results.items():
        base, _, changing = name.partition("_")
        label = labels[base] + (", list changing" if changing else "")
        if value is None:
            lines.append(f"{label:<34}{'not installed: pip install -e .[bench]':>24}")
            continue
        figures[f"{name}_get_calls_us"] = round(value[0] * 1e6, 1)
        figures[f"{name}_file_911_us"] = round(value[1] * 1e6, 1)
        lines.append(f"{label:<48}{value[0] * 1e6:>8.0f}µs{value[1] * 1e6:>10.0f}µs")
    for suffix, what in (("", "unchanged"), ("_changing", "changing")):
        ours_, floor_ = results[f"ours{suffix}"], results[f"floor{suffix}"]
        assert ours_ is not None and floor_ is not None
        figures[f"ours_over_floor_get_calls{suffix}"] = round(ours_[0] / floor_[0], 2)
        figures[f"ours_over_floor_file_911{suffix}"] = round(ours_[1] / floor_[1], 2)
        lines.append(
            f"ours / floor ({what}): get-calls {ours_[0] / floor_[0]:.2f}x, file-911 {ours_[1] / floor_[1]:.2f}x"
        )
    report(figures, lines)


if __name__ == "__main__":
    asyncio.run(main())
