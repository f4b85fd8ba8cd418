"""The tests' fake CAD in a process of its own, so that a benchmark measures only the bot.

    python -m bench.cad_server [--emergency N] [--dispatch M] [--churn] [--communities C [--free-first]]

prints its URL on the first line of stdout and serves until killed. `POST /_bench/add911?n=K`
adds K emergency calls; `POST /_bench/clear` empties the lists; `GET /_bench/count` returns how
many API requests it answered.

With `--communities C` it serves C communities (`community(i)`: their IDs and keys; the first is
the sandbox's own), each with its own calls (N emergency calls each) and its own budget per key;
`add911` then takes `community=ID`. `--free-first`: the first community's CAD budget is unlimited
(a benchmark that polls it out of step).
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from bot.sandbox.cad import SONORAN_LIMITS
from tests.doubles.fake_cad import API_KEY, COMMUNITY_ID, FakeCad


def community(index: int) -> tuple[str, str]:
    """The ID and API key of the server's `index`th community (0: the sandbox's own)."""
    if index == 0:
        return COMMUNITY_ID, API_KEY
    return f"bench{index:05d}", f"{index:08x}-bench-0000-0000-communitykey"


class BenchCad(FakeCad):
    answered = 0
    churn = False  # every call-list request first changes one call, so no two replies are alike

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/_bench/add911":
            target = self.communities.get(request.query.get("community", ""), self)
            ids = [
                target.add_911("Bench Caller", "Route 68", "Benchmark call")
                for _ in range(int(request.query.get("n", "1")))
            ]
            return web.Response(text=",".join(map(str, ids)))
        if request.path == "/_bench/clear":
            for server in self.servers.values():
                server.emergency.clear()
                server.active.clear()
            return web.Response(text="ok")
        if request.path == "/_bench/count":
            return web.Response(text=str(self.answered))
        self.answered += 1
        if self.churn and request.method == "GET" and request.path.endswith("/calls"):
            for server in self.servers.values():
                for call in list(server.emergency.values())[:1]:
                    call["description"] = f"Changed {self.answered}"
        response = await super().handle(request)
        self.requests.clear()  # the benchmarks count, they do not inspect
        return response


async def forget_requests(cad: FakeCad) -> None:
    """The other communities' request logs, emptied now and then (the benchmarks do not read them)."""
    while True:
        await asyncio.sleep(5)
        for other in cad.communities.values():
            other.requests.clear()


async def serve(emergency: int, dispatch: int, churn: bool, communities: int = 1, free_first: bool = False) -> None:
    cad = BenchCad(limits={} if free_first else None)
    cad.churn = churn
    for index in range(1, communities):
        cad.add_community(*community(index), limits=dict(SONORAN_LIMITS))
    for target in [cad, *cad.communities.values()]:
        for i in range(emergency):
            target.add_911(
                f"Caller {i}", f"{i} Route 68", "Benchmark emergency call", metadata={"postal": str(100 + i)}
            )
        for i in range(dispatch):
            target.add_dispatch(f"Call {i}", notes=[{"label": "1-A-1", "content": "en route", "type": "text"}])
    print(await cad.start(), flush=True)
    cleaner = asyncio.create_task(forget_requests(cad))
    await asyncio.Event().wait()
    cleaner.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--emergency", type=int, default=0)
    parser.add_argument("--dispatch", type=int, default=0)
    parser.add_argument("--churn", action="store_true", help="change one call before every call-list reply")
    parser.add_argument("--communities", type=int, default=1, help="communities served, each with its own key")
    parser.add_argument("--free-first", action="store_true", help="no CAD rate limit for the first community")
    args = parser.parse_args()
    asyncio.run(serve(args.emergency, args.dispatch, args.churn, args.communities, args.free_first))
