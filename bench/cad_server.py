"""The tests' fake CAD in a process of its own, so that a benchmark measures only the bot.

    python -m bench.cad_server [--emergency N] [--dispatch M] [--churn]

prints its URL on the first line of stdout and serves until killed. `POST /_bench/add911?n=K`
adds K emergency calls; `POST /_bench/clear` empties the lists; `GET /_bench/count` returns how
many API requests it answered.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from tests.doubles.fake_cad import FakeCad


class BenchCad(FakeCad):
    answered = 0
    churn = False  # every call-list request first changes one call, so no two replies are alike

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/_bench/add911":
            for _ in range(int(request.query.get("n", "1"))):
                self.add_911("Bench Caller", "Route 68", "Benchmark call")
            return web.Response(text="ok")
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


async def serve(emergency: int, dispatch: int, churn: bool) -> None:
    cad = BenchCad()
    cad.churn = churn
    for i in range(emergency):
        cad.add_911(f"Caller {i}", f"{i} Route 68", "Benchmark emergency call", metadata={"postal": str(100 + i)})
    for i in range(dispatch):
        cad.add_dispatch(f"Call {i}", notes=[{"label": "1-A-1", "content": "en route", "type": "text"}])
    print(await cad.start(), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--emergency", type=int, default=0)
    parser.add_argument("--dispatch", type=int, default=0)
    parser.add_argument("--churn", action="store_true", help="change one call before every call-list reply")
    args = parser.parse_args()
    asyncio.run(serve(args.emergency, args.dispatch, args.churn))
