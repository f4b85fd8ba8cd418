"""The push listener under attack, beside the CAD. For each attack, an attacker without the key
runs in a process of its own against the bot's listener (127.0.0.1 only, the real caps) while an
honest sender, in the bot's process, POSTs one EVENT_911 every 0.2 s on a FRESH connection each
time, as the CAD does. Every honest event must be answered 200, stored and posted to Discord
(in-process double) while the attack runs.

Attacks:
  bare       ~300 bare connections (nothing sent), all reopened every 3 s
  trickle    60 requests declaring a 1 MiB body and sending a byte a second, reopened when closed
  slowloris  200 connections sending their headers a byte every 0.5 s, reopened when closed
  malformed  16 workers sending malformed HTTP in a loop (CL+TE, bad chunks, huge headers, garbage)
  wrongkey   8 workers POSTing 1 MiB bodies with a wrong key in a loop
  together   all five at once

It prints, per attack: honest events sent / answered 200 / posted, the listener's closes
(evicted to make room, timed out, ...), the attacker's own count, and the bot process's open file
descriptors before, during (the most seen) and after, and its log lines. About 55 s in all.

    python -m bench.hostile [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import ROOT, feed_of, logged_in_bot, report
from tests.doubles.fake_cad import API_KEY, FakeCad
from tests.doubles.loopback import free_port

PATH = "/sonorancad/event"
CHANNEL = 4343
ATTACKS = ("bare", "trickle", "slowloris", "malformed", "wrongkey", "together")
WARM_UP = 1.5  # seconds of attack before the first honest event
HONEST_SECONDS = 5.0
HONEST_EVERY = 0.2
CALL_ID = re.compile(r"call #(\d+)")
MALFORMED = [
    b"POST /sonorancad/event HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /sonorancad/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST /sonorancad/event HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    b"GET / HTTP/1.1 and more\r\n\r\n",
]


# --- the attacker (a process of its own) -------------------------------------------------------------
class Attacker:
    def __init__(self, port: int, seconds: float) -> None:
        self.port = port
        self.deadline = time.monotonic() + seconds
        self.counts: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def going(self) -> bool:
        return time.monotonic() < self.deadline

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            connection = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.count("connect failed")
            return None
        self.count("connections opened")
        return connection

    async def bare(self) -> None:
        while self.going():
            held = [c for c in await asyncio.gather(*(self.connect() for _ in range(300))) if c]
            await asyncio.sleep(min(3.0, max(0.0, self.deadline - time.monotonic())))
            for _, writer in held:
                writer.transport.abort()

    async def _hold(self, head: bytes, drip: bytes, every: float) -> None:
        """One slot: a connection that sends `head`, then `drip` every `every` s; reopened when closed."""
        while self.going():
            connection = await self.connect()
            if connection is None:
                await asyncio.sleep(0.5)
                continue
            reader, writer = connection
            try:
                writer.write(head)
                while self.going() and not reader.at_eof():
                    await asyncio.sleep(every)
                    writer.write(drip)
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        if await asyncio.wait_for(reader.read(1024), 0.001) == b"":
                            break
            except OSError:
                pass
            if self.going():
                self.count("closed by the bot")
            writer.transport.abort()

    async def trickle(self) -> None:
        head = f"POST {PATH} HTTP/1.1\r\nHost: bot\r\nContent-Length: {1024 * 1024}\r\n\r\n".encode() + b'{"key":"'
        await asyncio.gather(*(self._hold(head, b"x", 1.0) for _ in range(60)))

    async def slowloris(self) -> None:
        await asyncio.gather(*(self._hold(f"POST {PATH} HTTP/1.1\r\n".encode(), b"X", 0.5) for _ in range(200)))

    async def _requests(self, bodies: list[bytes]) -> None:
        index = 0
        while self.going():
            connection = await self.connect()
            if connection is None:
                await asyncio.sleep(0.1)
                continue
            reader, writer = connection
            try:
                writer.write(bodies[index % len(bodies)])
                answer = await asyncio.wait_for(reader.read(64), 20)
                self.count(f"answered {answer[9:12].decode(errors='replace') or 'nothing'}")
            except (OSError, TimeoutError):
                self.count("reset")
            writer.transport.abort()
            index += 1

    async def malformed(self) -> None:
        await asyncio.gather(*(self._requests(MALFORMED) for _ in range(16)))

    async def wrongkey(self) -> None:
        body = json.dumps({"key": "not-the-key", "type": "EVENT_911", "data": {"pad": "x" * (1024 * 1024 - 100)}})
        head = f"POST {PATH} HTTP/1.1\r\nHost: bot\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        await asyncio.gather(*(self._requests([head.encode() + body.encode()]) for _ in range(8)))

    async def together(self) -> None:
        await asyncio.gather(self.bare(), self.trickle(), self.slowloris(), self.malformed(), self.wrongkey())


async def attack(kind: str, port: int, seconds: float) -> None:
    attacker = Attacker(port, seconds)
    await getattr(attacker, kind)()
    print(json.dumps(attacker.counts), flush=True)


# --- the bot and the honest sender -------------------------------------------------------------------
class LogCount(logging.Handler):
    """The bot's log lines at WARNING and above, and those carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines = 0
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += 1
        self.tracebacks += bool(record.exc_info)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def one_attack(kind: str, bot: Any, posted: set[int], first_id: int, logs: LogCount) -> dict[str, Any]:
    listener = bot.intake.listener if bot.intake else None
    assert listener is not None
    url = f"http://127.0.0.1:{listener.bound_port}{PATH}"
    before_stats = _stats(listener)
    lines_before, tracebacks_before = logs.lines, logs.tracebacks
    fds = {"before": open_fds(), "during_max": 0}
    seconds = WARM_UP + HONEST_SECONDS + 0.5
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.hostile",
        "--attack",
        kind,
        str(listener.bound_port),
        str(seconds),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    done = asyncio.Event()

    async def watch_fds() -> None:
        while not done.is_set():
            fds["during_max"] = max(fds["during_max"], open_fds())
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_fds())
    await asyncio.sleep(WARM_UP)
    answers: dict[str, int] = {}
    sent: list[int] = []
    acknowledged: list[int] = []
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(force_close=True)  # a fresh connection per event, as the CAD
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:
        for call_id in range(first_id, first_id + int(HONEST_SECONDS / HONEST_EVERY)):
            started = time.perf_counter()
            call = {"callId": call_id, "isEmergency": True, "caller": "CAD", "location": "Route 68", "description": "x"}
            body = json.dumps({"key": API_KEY, "type": "EVENT_911", "data": {"call": call}})
            sent.append(call_id)
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                status = type(error).__name__
            answers[status] = answers.get(status, 0) + 1
            if status == "200":
                acknowledged.append(call_id)
                latencies.append((time.perf_counter() - started) * 1e3)
            await asyncio.sleep(max(0.0, HONEST_EVERY - (time.perf_counter() - started)))
    out, _ = await process.communicate()
    done.set()
    await watcher
    await feed_of(bot).settled()
    await asyncio.sleep(1.0)  # what the attack left open is closed by now
    fds["after"] = open_fds()
    after_stats = _stats(listener)
    closes = {k: after_stats[k] - before_stats[k] for k in after_stats if k != "peak_held_bytes"}
    return {
        "honest_sent": len(sent),
        "honest_answers": answers,
        "honest_acknowledged": len(acknowledged),
        "honest_posted": len([i for i in sent if i in posted]),
        "acknowledged_not_posted": [i for i in acknowledged if i not in posted],
        "honest_max_ms": round(max(latencies, default=0.0), 1),
        "listener": {k: v for k, v in closes.items() if v},
        "peak_held_bytes": after_stats.get("peak_held_bytes", 0),
        "attacker": json.loads(out.decode().strip().splitlines()[-1] or "{}"),
        "fds": fds,
        "log_lines": logs.lines - lines_before,
        "log_tracebacks": logs.tracebacks - tracebacks_before,
    }


def _stats(listener: Any) -> dict[str, int]:
    """The listener's counts (none from a listener that keeps none: run on the code before them)."""
    stats = getattr(listener, "stats", None)
    return dataclasses.asdict(stats) if stats is not None else {}


async def main() -> None:
    cad = FakeCad()
    cad_url = await cad.start()
    figures: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        settings: dict[str, Any] = {
            "feeds": [{"server_id": 1, "channel_id": CHANNEL}],
            "push": {"enabled": True, "host": "127.0.0.1", "port": free_port(), "path": PATH},
        }
        async with logged_in_bot(cad_url, Path(tmp) / "hostile.sqlite3", **settings) as (bot, fake):
            posted: set[int] = set()

            def on_post(message: dict[str, Any]) -> None:
                for embed in message.get("embeds") or []:
                    if match := CALL_ID.search(str(embed.get("title", ""))):
                        posted.add(int(match.group(1)))

            fake.on_post = on_post
            logs = LogCount()
            logging.getLogger().addHandler(logs)
            try:
                for number, kind in enumerate(ATTACKS):
                    figures[kind] = await one_attack(kind, bot, posted, 1000 * (number + 1), logs)
            finally:
                logging.getLogger().removeHandler(logs)
    await cad.close()
    figures["seconds"] = round(time.monotonic() - started, 1)
    report(figures, _lines(figures))


def _lines(figures: dict[str, Any]) -> list[str]:
    lines = [
        f"honest sender: one EVENT_911 every {HONEST_EVERY} s on a fresh connection for {HONEST_SECONDS:.0f} s, "
        f"after {WARM_UP} s of attack"
    ]
    for kind in ATTACKS:
        f = figures[kind]
        lines += [
            f"{kind}: honest {f['honest_sent']} sent, {f['honest_acknowledged']} answered 200, "
            f"{f['honest_posted']} posted {f['honest_answers']} (slowest 200: {f['honest_max_ms']} ms)",
            f"  listener: {f['listener']}",
            f"  attacker: {f['attacker']}",
            f"  open fds: {f['fds']['before']} before, {f['fds']['during_max']} at most during, "
            f"{f['fds']['after']} after; the bot's log: {f['log_lines']} lines at WARNING or above, "
            f"{f['log_tracebacks']} with a traceback",
        ]
    lines.append(f"{figures['seconds']} s in all")
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["--attack"]:
        asyncio.run(attack(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    else:
        asyncio.run(main())
