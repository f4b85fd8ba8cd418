"""Kill it for real: the bot runs as its own process against Discord served over loopback HTTP
(`tests/doubles/discord_server.py`), is killed with SIGKILL at random moments while the CAD moves on, and
is started again. What counts is the channel's final state, not any return value: every call the
CAD still lists is shown once, as active; every other call that was shown, once, as ended."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp

from .doubles.discord_fakes import ChannelFault, FakeDiscord
from .doubles.discord_server import DiscordServer
from .doubles.fake_cad import API_KEY, FakeCad
from .doubles.fake_gateway import FakeGateway, guild_payload, text_channel
from .doubles.loopback import free_port
from .test_operations import FEED_CHANNEL, run_offline, wait_for, write_config
from .test_push import PATH, call_911, push_toml

ROUNDS = 12
CALL_ID = re.compile(r"call #(\d+)")


async def start(config: Path, discord_url: str, gateway_url: str) -> asyncio.subprocess.Process:
    return await run_offline(config, {"FAKE_DISCORD_URL": discord_url, "FAKE_GATEWAY_URL": gateway_url}, quiet=True)


class Killer:
    """Kills the bot at the `nth` channel request of `target` (POST: a new message, PATCH: an
    edit), after Discord did the work and before the bot reads the answer."""

    def __init__(self, process: asyncio.subprocess.Process, target: str, nth: int) -> None:
        self.process, self.target, self.nth = process, target, nth
        self.seen = 0
        self.killed = False

    async def on_request(self, method: str, path: str) -> None:
        if method == self.target and "/channels/" in path:
            self.seen += 1
            if self.seen == self.nth and self.process.returncode is None:
                self.process.kill()
                self.killed = True


async def test_sigkill_at_random_moments_and_restart_leave_the_channel_true(cad: FakeCad, tmp_path: Path) -> None:
    # every restart is a new process that polls at once, a dozen a minute: more than Sonoran's 5 a
    # minute allows; this test is about kills, so the sandbox is told to count no budget
    cad.limits.clear()
    gateway = FakeGateway(guild_payload([text_channel(FEED_CHANNEL)]))
    fake = FakeDiscord(None)  # type: ignore[arg-type]
    server = DiscordServer(fake, await gateway.start())
    discord_url = await server.start()
    config = write_config(tmp_path, cad.url)
    health = tmp_path / "last-poll"
    rng = random.Random(20261123)
    kills: Counter[str] = Counter()
    try:
        for round_ in range(ROUNDS):
            for _ in range(rng.randint(1, 6)):  # new calls, some long enough to need a message each
                cad.add_911(f"Caller {round_}", "Grove St", "help " * rng.randint(1, 400))
            live = list(cad.servers[1].emergency)
            for call_id in rng.sample(live, k=min(len(live), rng.randint(0, 3))):
                cad.servers[1].emergency.pop(call_id)  # ended while the bot was down or busy
            process = await start(config, discord_url, gateway.url)
            # SIGKILL (no handler, no cleanup) right after Discord made a post or an edit but before
            # the bot hears of it, or at a random moment
            killer = Killer(process, ("POST", "anywhere", "PATCH")[round_ % 3], nth=rng.choice((1, 1, 2)))
            patience = 6 if killer.target != "anywhere" else rng.uniform(0.3, 2.5)  # a busy machine starts slowly
            kills[await killed_run(server, killer, patience)] += 1
        # a last, undisturbed run: one whole cycle, then a clean stop
        await clean_run(lambda: start(config, discord_url, gateway.url), health)
    finally:
        await server.close()
        await gateway.close()

    shown, still_live = channel_is_true(fake, cad)
    assert kills["POST"] >= 2 and kills["PATCH"] >= 1, kills  # the windows that matter were hit
    ended = {call_id: titles[0] for call_id, titles in shown.items() if call_id not in still_live}
    wrong = {call_id: title for call_id, title in ended.items() if "(removed)" not in title}
    assert wrong == {}, f"{len(wrong)} of {len(shown)} ended calls still shown as active"


async def killed_run(server: DiscordServer, killer: Killer, patience: float) -> str:
    """Lets the bot run until `killer` strikes (or `patience` runs out: then SIGKILL anyway); what
    killed it."""
    server.before_reply = killer.on_request
    try:
        await asyncio.wait_for(killer.process.wait(), patience)
    except TimeoutError:
        killer.process.kill()
    await killer.process.wait()
    server.before_reply = None
    return killer.target if killer.killed else "timed"


def _stamp(health: Path) -> str:
    return health.read_text() if health.exists() else ""


def _moved(health: Path, stamp: str) -> Callable[[], bool]:
    return lambda: _stamp(health) not in ("", stamp)


async def clean_run(start: Callable[[], Awaitable[asyncio.subprocess.Process]], health: Path) -> None:
    """A last, undisturbed run: two whole cycles (the health stamp moves twice: what the first
    planned has had a cycle to be delivered, on a slow machine too), then a clean stop."""
    process = await start()
    for _ in range(2):
        await wait_for(_moved(health, _stamp(health)), seconds=60)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0


def shown_calls(fake: FakeDiscord, channel: int) -> dict[int, list[str]]:
    """What a feed channel shows, as Discord holds it: each call's embed titles, by call id."""
    shown: dict[int, list[str]] = {}
    for message in fake.channel_messages(channel):
        for embed in message["embeds"]:
            match = CALL_ID.search(embed["title"])
            assert match, embed["title"]
            shown.setdefault(int(match.group(1)), []).append(embed["title"])
    return shown


def channel_is_true(fake: FakeDiscord, cad: FakeCad) -> tuple[dict[int, list[str]], set[int]]:
    """The feed channel as Discord holds it: no call shown twice, every call the CAD still lists
    shown once as active. Returns what each call's embeds say, and the calls still live."""
    shown = shown_calls(fake, FEED_CHANNEL)
    still_live = set(cad.servers[1].emergency)
    assert fake.refused == []
    assert {call_id: titles for call_id, titles in shown.items() if len(titles) > 1} == {}  # no duplicates
    assert {call_id: shown.get(call_id) for call_id in still_live} == {
        call_id: [f"🚨 EMERGENCY 911 call #{call_id}"] for call_id in still_live
    }
    return shown, still_live


async def killed_after_200(
    cad: FakeCad, tmp_path: Path, event: Mapping[str, object], done: Callable[[FakeDiscord], bool], extra: str = ""
) -> FakeDiscord:
    """Runs the bot as a process; once its first poll is done, POSTs `event` to its listener while
    Discord does not answer in the channel, and SIGKILLs it the moment the 200 is in. Whatever the
    killed bot had on its way to Discord is refused, never made. Then starts it again until `done`,
    stops it cleanly, and hands back Discord as it then is."""
    gateway = FakeGateway(guild_payload([text_channel(FEED_CHANNEL)]))
    fake = FakeDiscord(None)  # type: ignore[arg-type]
    server = DiscordServer(fake, await gateway.start())
    discord_url = await server.start()
    port = free_port()
    config = write_config(tmp_path, cad.url, extra=push_toml(port) + extra)
    health = tmp_path / "last-poll"
    channel = str(FEED_CHANNEL)
    gate = fake.gates[channel] = asyncio.Event()  # Discord does not answer in the channel for now
    body = json.dumps({"key": API_KEY, **event})
    try:
        process = await start(config, discord_url, gateway.url)
        await wait_for(health.exists)  # the first poll is done: only the event can bring what it says
        url = f"http://127.0.0.1:{port}{PATH}"
        async with aiohttp.ClientSession() as session, session.post(url, data=body) as answer:
            status = answer.status
            process.kill()  # SIGKILL the moment the answer is in
        await process.wait()
        assert status == 200
        fake.channel_faults[channel] = ChannelFault(503, 0, "upstream connect error")
        gate.set()
        await asyncio.sleep(0.2)
        del fake.channel_faults[channel], fake.gates[channel]
        assert fake.channel_messages(FEED_CHANNEL) == []
        process = await start(config, discord_url, gateway.url)
        await wait_for(lambda: done(fake))
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        await server.close()
        await gateway.close()
    return fake


async def test_sigkill_right_after_the_listener_answered_200_loses_nothing(cad: FakeCad, tmp_path: Path) -> None:
    """A 200 is a promise: the bot is killed the moment the listener answers, before Discord has
    seen the call (its channel does not answer yet); after the restart the call is posted, once.
    The CAD never lists the call, so only the stored event can bring it back."""
    event = {"type": "EVENT_911", "data": {"call": call_911(4242)}}
    fake = await killed_after_200(cad, tmp_path, event, lambda fake: bool(fake.channel_messages(FEED_CHANNEL)))
    shown = [e["title"] for m in fake.channel_messages(FEED_CHANNEL) for e in m["embeds"]]
    assert len(shown) == 1 and "911 call #4242" in shown[0], shown


async def test_sigkill_right_after_a_panic_event_was_answered_200_posts_its_alert_once(
    cad: FakeCad, tmp_path: Path
) -> None:
    """The same promise for a panic: after the restart the alert is posted once, with its ping. The
    CAD's list never shows the panic (it was over by then), so only the stored event can bring the
    alert back: it is posted, then shown cleared by the restarted bot's read of the list."""
    cad.add_unit(21, "1A-12", "J. Smith")
    event = {"type": "EVENT_UNIT_PANIC", "data": {"identIds": [21], "isPanic": True}}
    alerts = f"\n[[alerts]]\nserver_id = 1\nchannel_id = {FEED_CHANNEL}\nping_role_id = 777\n"
    fake = await killed_after_200(
        cad, tmp_path, event, lambda fake: "cleared" in json.dumps(fake.channel_messages(FEED_CHANNEL)), alerts
    )
    (alert,) = fake.channel_messages(FEED_CHANNEL)
    assert alert["content"] == "<@&777> PANIC: 1A-12 J. Smith"
    assert alert["embeds"][0]["title"] == "Panic cleared: 1A-12 J. Smith"
