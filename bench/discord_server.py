"""The tests' Discord double over loopback HTTP in a process of its own, so that a benchmark's
figures are the bot's and not the double's (its checks and JSON cost about as much CPU as the
bot's own work per message).

    python -m bench.discord_server

prints its URL on the first line of stdout, then one line per message made: `<monotonic time>
<channel id> <call ids, comma-separated>` (time.monotonic() is the same clock in every process on
Linux). Lines on stdin change how a channel answers: `fault CHANNEL STATUS [RETRY_AFTER]`, or
`clear CHANNEL`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

from tests.doubles.discord_fakes import ChannelFault, FakeDiscord
from tests.doubles.discord_server import DiscordServer

CALL_ID = re.compile(r"call #(\d+)")


def on_post(message: dict[str, Any]) -> None:
    ids = [m.group(1) for e in message.get("embeds") or [] if (m := CALL_ID.search(str(e.get("title", ""))))]
    print(f"{time.monotonic():.6f} {message.get('channel_id')} {','.join(ids)}", flush=True)


async def serve() -> None:
    fake = FakeDiscord(None)  # type: ignore[arg-type]  # served over HTTP, not aioresponses
    fake.on_post = on_post
    server = DiscordServer(fake, "ws://127.0.0.1:9/unused")  # the benchmarks log in, never connect
    print(await server.start(), flush=True)
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "fault":
            retry_after = float(line[3]) if len(line) > 3 else None
            fake.channel_faults[line[1]] = ChannelFault(int(line[2]), 0, "bench fault", retry_after=retry_after)
        elif line[0] == "clear":
            fake.channel_faults.pop(line[1], None)
    await server.close()


if __name__ == "__main__":
    asyncio.run(serve())
