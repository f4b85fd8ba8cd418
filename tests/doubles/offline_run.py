"""Runs the real CLI (`bot.__main__.main`) in this process with Discord faked: REST answered by
aioresponses, the gateway by a local websocket server. The subprocess tests start this file to
check signals, exit codes and logs of a whole run; the CAD is whatever the config points at."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.__main__ import main  # first: it makes an early SIGTERM a clean exit

# isort: split
from aioresponses import aioresponses

from tests.doubles import _aiohttp314_shim  # noqa: F401
from tests.doubles.discord_fakes import FakeDiscord
from tests.doubles.fake_gateway import FakeGateway, guild_payload, text_channel


def start_gateway(channel_ids: list[int]) -> str:
    ready = threading.Event()
    holder: dict[str, str] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        gateway = FakeGateway(guild_payload([text_channel(c) for c in channel_ids]))
        holder["url"] = loop.run_until_complete(gateway.start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True, name="fake-gateway").start()
    ready.wait(10)
    return holder["url"]


def against_discord_server(url: str, gateway: str) -> int:
    """The bot talks to `tests/doubles/discord_server.py` over real HTTP: nothing is faked in this process."""
    import discord.http
    import yarl
    from discord.gateway import DiscordWebSocket

    discord.http.Route.BASE = url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    return main(sys.argv[1:])


if __name__ == "__main__":
    if os.environ.get("OFFLINE_RUN_EPOCH_LOG"):
        # each line stamped with its time.time() to the microsecond instead of the second (the
        # cluster test orders the lease lines of several processes by it); same shape otherwise
        import bot.logs

        bot.logs.FORMAT = "[{created:.6f}] [{levelname:<7}] {name}: {message}"
    if os.environ.get("FAKE_DISCORD_URL"):
        sys.exit(against_discord_server(os.environ["FAKE_DISCORD_URL"], os.environ["FAKE_GATEWAY_URL"]))
    channels = [int(c) for c in os.environ.get("FAKE_DISCORD_CHANNELS", "").split(",") if c]
    with aioresponses(passthrough=["http://127.0.0.1", "ws://127.0.0.1"]) as mock:
        fake = FakeDiscord(mock, valid_token=os.environ.get("FAKE_DISCORD_TOKEN"))
        if not os.environ.get("FAKE_DISCORD_DOWN"):  # down: every request to Discord is refused
            fake.install()
        fake.serve_gateway(start_gateway(channels))
        code = main(sys.argv[1:])
    print(f"channel posts: {fake.channel_posts}", flush=True)
    sys.exit(code)
