"""A hosted deployment of several real bot processes on one PostgreSQL, for the cluster test
(tests/test_cluster.py) and `bench.cluster`.

`Cluster` starts, in this process: one sandbox CAD serving N communities (each its own ID, key,
calls and per-key budget; every request recorded with the time it came and whether it was
refused with a 429), the Discord REST double (`DiscordServer`) and the gateway double with one
guild per community, their ids spread over the shards. On the PostgreSQL server it is given it
makes a database of its own (dropped at the end) and seeds the hosted registry there as /setup
leaves it: each community linked to its guild, one feed channel each, its key sealed under a
fresh master key that only the processes' environment holds. Then it starts `processes` bot
processes (`python -m bot run` through tests/doubles/offline_run.py, each with its own config:
hosted, `state.url` on that database, its own push listener port, `[cluster] lease_seconds`, and
shard i of `processes`).

Helpers: SIGKILL a process and start it again (same config), send push events (well-formed
Sonoran envelopes with the community's own key, to a random live process, as a load balancer
would), add and remove calls in the CAD. And the readings the test checks and the bench prints:
what every feed channel shows against what the CAD lists (`tally`), who owned each community
when (`tenures`, from the `bot.cluster` log lines: "lease of <tenant> acquired (fence N)" and
"lease of <tenant>: stopping it (<why>)", each stamped by the bot with its time.time(); a killed
process's tenures end at the kill), and the requests each key made per operation in any sliding
minute against Sonoran's limits (`budget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yarl
from cryptography.fernet import Fernet

from bot.config import StateSettings
from bot.hosting.models import GuildConfig
from bot.hosting.registry import Registry
from bot.hosting.secrets import SecretBox
from bot.sandbox.cad import SONORAN_LIMITS, FakeCad

from .doubles.discord_fakes import FakeDiscord
from .doubles.discord_server import DiscordServer
from .doubles.fake_gateway import FakeGateway, guild_payload, text_channel
from .doubles.loopback import free_port
from .helpers import DISCORD_TOKEN
from .test_kill import shown_calls

ROOT = Path(__file__).resolve().parent.parent
PUSH_PATH = "/sonorancad/event"
CHANNEL_BASE = 910_000  # community i posts in channel CHANNEL_BASE + i
GUILD_BASE = 4_000  # community i's guild: (GUILD_BASE + i) << 22, on shard (GUILD_BASE + i) % processes

_STAMP = r"^\[(?P<at>\d+\.\d+)\] \[\w+\s*\] bot\.cluster: lease of (?P<tenant>\S+)"
ACQUIRED = re.compile(_STAMP + r" acquired \(fence (?P<fence>\d+)\)")
STOPPING = re.compile(_STAMP + r": stopping it \((?P<why>.*)\)")


@dataclass
class Member:
    """One community of the deployment, as the CAD, Discord and the registry know it."""

    index: int
    community_id: str
    api_key: str
    cad: FakeCad
    guild_id: int
    channel_id: int
    tenant_id: str = ""
    push_token: str = ""
    pushed: set[int] = field(default_factory=set)  # calls whose EVENT_911 a listener answered 200


@dataclass
class Tenure:
    """One process's hold on one community: from its "acquired" line to its "stopping it" line
    (or to its kill; `end` None: still held when the reading was taken)."""

    tenant: str
    process: str  # "p1", or "p1.2" for its second start
    fence: int
    start: float  # time.time()
    end: float | None = None
    why: str = ""  # the stopping reason, "killed", or "" while held


@dataclass
class Ownership:
    """Every community's tenures in order, and what is wrong or notable in them."""

    tenures: dict[str, list[Tenure]]
    overlaps: list[str]  # two processes holding one community at once
    unowned: list[str]  # a community without any owner at the end of the window
    fence_disorder: list[str]  # a later tenure with a fence not above the one before
    gaps_after_kill: list[float]  # seconds from a kill to the next tenure of that community
    gaps_otherwise: list[float]  # seconds between a clean end and the next tenure (handovers)
    acquisitions: int

    def figures(self) -> str:
        kill = max(self.gaps_after_kill, default=0.0)
        other = max(self.gaps_otherwise, default=0.0)
        return (
            f"{self.acquisitions} acquisitions over {len(self.tenures)} communities; {len(self.overlaps)} overlaps; "
            f"{len(self.unowned)} unowned at the end; {len(self.fence_disorder)} fences out of order; "
            f"unowned after a kill: {len(self.gaps_after_kill)} gaps, max {kill:.2f}s; "
            f"between other tenures: {len(self.gaps_otherwise)} gaps, max {other:.2f}s"
        )


@dataclass
class Tally:
    """What the feed channels show against what the CAD lists, over every community."""

    shown: int = 0  # calls shown
    live: int = 0  # calls the CAD still lists
    duplicates: list[str] = field(default_factory=list)  # a call shown more than once
    lost: list[str] = field(default_factory=list)  # a listed call not shown, or a pushed one never shown
    stale: list[str] = field(default_factory=list)  # an ended call shown as active, or a live one as ended
    refused: int = 0  # Discord's 400s

    def figures(self) -> str:
        return (
            f"{self.shown} calls shown, {self.live} still live in the CAD; {len(self.duplicates)} duplicates, "
            f"{len(self.lost)} lost, {len(self.stale)} stale, {self.refused} refused by Discord"
        )


@dataclass
class Budget:
    """Requests per key per operation in the busiest sliding minute, against Sonoran's limits."""

    busiest: dict[str, tuple[int, int]]  # operation -> (most in any minute by one key, limit)
    over: list[str]  # "community operation: n > limit"
    limited: int  # requests the CAD answered with a 429
    requests: int

    def figures(self) -> str:
        shown = ", ".join(f"{op} {n}/{limit}" for op, (n, limit) in sorted(self.busiest.items()))
        return f"{self.requests} CAD requests, {self.limited} answered 429; busiest minute per key: {shown}"


class BotProcess:
    """One start of one bot process: its log lines as they come (each with the bot's own
    time.time() stamp, see `OFFLINE_RUN_EPOCH_LOG` in tests/doubles/offline_run.py)."""

    def __init__(self, index: int, start: int, config: Path, env: dict[str, str], log: Path) -> None:
        self.index, self.config, self.env, self.log = index, config, env, log
        self.name = f"p{index}" if start == 1 else f"p{index}.{start}"
        self.lines: list[str] = []
        self.killed_at: float | None = None
        self.stopped_at: float | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "tests" / "doubles" / "offline_run.py"),
            "run",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "OFFLINE_RUN_EPOCH_LOG": "1", **self.env},
            cwd=str(ROOT),
        )
        self._reader = asyncio.create_task(self._read(), name=f"log of {self.name}")

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        with self.log.open("a") as out:
            out.write(f"--- {self.name} (pid {self.process.pid})\n")
            async for raw in self.process.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                out.write(line + "\n")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def held(self) -> set[str]:
        """The tenants this process holds now, by its log."""
        return {t.tenant for t in tenures_of(self) if t.end is None}

    async def kill(self) -> float:
        """SIGKILL: no handler, no cleanup. Returns when (time.time())."""
        assert self.process is not None
        self.killed_at = time.time()
        self.process.kill()
        await self.process.wait()
        await self._drained()
        return self.killed_at

    async def stop(self) -> int:
        """SIGTERM, as a deployment stops a process; its exit code (SIGKILLed after a minute)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.stopped_at = time.time()
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), 60)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._drained()
        return code

    async def _drained(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 5)


def tenures_of(process: BotProcess) -> list[Tenure]:
    """The tenures in one process's log; those still open end at its kill, if it was killed."""
    held: dict[str, Tenure] = {}
    done: list[Tenure] = []
    for line in list(process.lines):
        if match := ACQUIRED.match(line):
            tenant = match["tenant"]
            if tenant in held:  # acquired twice without a stop between: keep both visible
                done.append(held.pop(tenant))
            held[tenant] = Tenure(tenant, process.name, int(match["fence"]), float(match["at"]))
        elif (match := STOPPING.match(line)) and match["tenant"] in held:
            tenure = held.pop(match["tenant"])
            tenure.end, tenure.why = float(match["at"]), match["why"]
            done.append(tenure)
    for tenure in held.values():
        if process.killed_at is not None:
            tenure.end, tenure.why = process.killed_at, "killed"
        done.append(tenure)
    return done


def tenures_in(processes: list[BotProcess], tenants: list[str]) -> dict[str, list[Tenure]]:
    """Every tenure of `processes`, by tenant, in order of start."""
    out: dict[str, list[Tenure]] = {tenant: [] for tenant in tenants}
    for process in processes:
        for tenure in tenures_of(process):
            out.setdefault(tenure.tenant, []).append(tenure)
    for tenures in out.values():
        tenures.sort(key=lambda t: (t.start, t.fence))
    return out


def judge(every: dict[str, list[Tenure]], until: float) -> Ownership:
    """Each community's tenures (in order of start) read up to `until`: overlaps, fences out of
    order, a community left unowned, and the gaps between one owner and the next."""
    overlaps: list[str] = []
    unowned: list[str] = []
    disorder: list[str] = []
    after_kill: list[float] = []
    otherwise: list[float] = []
    for tenant, tenures in every.items():
        for before, after in itertools.pairwise(tenures):
            if after.fence <= before.fence:
                disorder.append(f"{tenant}: fence {after.fence} ({after.process}) after {before.fence}")
            if before.end is None or before.end > after.start:
                overlaps.append(
                    f"{tenant}: {before.process} (fence {before.fence}, until "
                    f"{'still held' if before.end is None else f'{before.end:.3f}'}) and {after.process} "
                    f"(fence {after.fence}, from {after.start:.3f})"
                )
            elif before.end < until:
                (after_kill if before.why == "killed" else otherwise).append(after.start - before.end)
        last = tenures[-1] if tenures else None
        if last is None or (last.end is not None and last.end < until):
            unowned.append(tenant)
    acquisitions = sum(len(t) for t in every.values())
    return Ownership(every, overlaps, unowned, disorder, after_kill, otherwise, acquisitions)


def busiest_minute(stamps: list[float]) -> int:
    """The most stamps in any window of 60 seconds."""
    ordered, most, first = sorted(stamps), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 60.0:
            first += 1
        most = max(most, last - first + 1)
    return most


class Cluster:
    def __init__(self, workdir: Path, *, processes: int, communities: int, lease_seconds: float, seed: int) -> None:
        self.workdir = workdir
        self.count = processes
        self.lease_seconds = lease_seconds
        self.rng = random.Random(seed)
        self.master_key = Fernet.generate_key().decode()
        self.front = FakeCad(community_id="cluster-00", api_key=self._key())
        self.members: list[Member] = []
        for index in range(communities):
            cad = self.front if index == 0 else self.front.add_community(f"cluster-{index:02d}", self._key())
            guild = (GUILD_BASE + index) << 22
            self.members.append(Member(index, cad.community_id, cad.api_key, cad, guild, CHANNEL_BASE + index))
        self.fake = FakeDiscord(None)  # type: ignore[arg-type]
        self.posted: list[tuple[float, int, list[int]]] = []  # (time.monotonic(), channel, call ids), as made
        self.fake.on_post = self._on_post
        self.gateway = FakeGateway(
            guilds=[
                guild_payload([text_channel(m.channel_id)], guild_id=str(m.guild_id), name=f"RP {m.index}")
                for m in self.members
            ]
        )
        self.server: DiscordServer | None = None
        self.ports = [free_port() for _ in range(processes)]
        self.current: list[BotProcess] = []
        self.every: list[BotProcess] = []  # every start of every process, in order
        self.push_answers: dict[int, int] = {}  # HTTP status -> count
        self.db_url = ""
        self._server_url = ""
        self._database = ""
        self._session: aiohttp.ClientSession | None = None

    def _key(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # --- the shared parts -------------------------------------------------------------------------
    async def open(self, server_url: str) -> None:
        self._server_url = server_url
        self._database = f"cluster_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self._database}"')
        finally:
            await admin.close()
        self.db_url = str(yarl.URL(server_url).with_path(f"/{self._database}"))
        await self.front.start()
        self.server = DiscordServer(self.fake, await self.gateway.start())
        await self.server.start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        await self._seed()

    async def _seed(self) -> None:
        registry = await Registry.open_state(StateSettings(url=self.db_url), SecretBox([self.master_key]))
        try:
            for member in self.members:
                await registry.link(
                    member.guild_id, community_id=member.community_id, api_key=member.api_key, api_url=self.front.url
                )
                feed = {"server_id": 1, "channel_id": member.channel_id}
                await registry.save_config(member.guild_id, GuildConfig.model_validate({"feeds": [feed]}))
            by_community = {t.community_id: t for t in await registry.tenants()}
        finally:
            await registry.close()
        for member in self.members:
            tenant = by_community[member.community_id]
            member.tenant_id, member.push_token = tenant.id, tenant.push_token.get_secret_value()

    async def close(self) -> None:
        for process in self.current:
            if process.alive:
                await process.kill()
        if self._session is not None:
            await self._session.close()
        if self.server is not None:
            await self.server.close()
        await self.gateway.close()
        await self.front.close()
        if self._database:
            admin = await asyncpg.connect(self._server_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
            finally:
                await admin.close()

    def config(self, index: int) -> Path:
        path = self.workdir / f"bot-{index}.toml"
        path.write_text(
            f'[discord]\ntoken = "{DISCORD_TOKEN}"\nshard_ids = [{index}]\nshard_count = {self.count}\n'
            f"[hosting]\nenabled = true\nallow_private_api_urls = true\n"
            f'[state]\nurl = "{self.db_url}"\npath = "{self.workdir / f"unused-{index}.sqlite3"}"\n'
            f'health_file = "{self.workdir / f"last-poll-{index}"}"\n'
            # the feeds poll every 20 s even while events come (5: not slower than that)
            f'[push]\nenabled = true\nhost = "127.0.0.1"\nport = {self.ports[index]}\npath = "{PUSH_PATH}"\n'
            f"poll_seconds_when_live = 5\n"
            f"[cluster]\nlease_seconds = {self.lease_seconds}\n"
        )
        return path

    def env(self) -> dict[str, str]:
        assert self.server is not None
        return {
            "FAKE_DISCORD_URL": self.server.url,
            "FAKE_GATEWAY_URL": self.gateway.url,
            "SONORAN_BOT_HOSTING__SECRET_KEYS": self.master_key,
        }

    # --- the processes ------------------------------------------------------------------------------
    async def start(self) -> None:
        for index in range(self.count):
            self.current.append(await self._start(index, 1))

    async def _start(self, index: int, start: int) -> BotProcess:
        process = BotProcess(index, start, self.config(index), self.env(), self.workdir / f"bot-{index}.log")
        await process.start()
        self.every.append(process)
        return process

    async def kill(self, index: int) -> float:
        return await self.current[index].kill()

    async def restart(self, index: int) -> BotProcess:
        starts = sum(1 for p in self.every if p.index == index)
        self.current[index] = await self._start(index, starts + 1)
        return self.current[index]

    async def stop(self) -> tuple[float, list[int]]:
        """SIGTERM to every live process at once; when the first was sent, and the exit codes."""
        began = time.time()
        codes = await asyncio.gather(*(p.stop() for p in self.current if p.alive))
        return began, list(codes)

    def owners(self) -> dict[str, str]:
        """Tenant id -> the live process whose log says it holds it now."""
        out: dict[str, str] = {}
        for process in self.current:
            if process.alive:
                for tenant in process.held():
                    out[tenant] = process.name
        return out

    async def until(self, condition: Callable[[], bool], what: str, seconds: float) -> None:
        """Waits for `condition`; raises (a stuck run, not a timing claim) after `seconds`."""
        give_up = time.monotonic() + seconds
        while not condition():
            dead = [p.name for p in self.current if p.process is not None and p.process.returncode not in (None, -9)]
            if dead:
                raise AssertionError(f"{what}: process {dead} exited; see {self.workdir}/bot-*.log")
            if time.monotonic() > give_up:
                raise AssertionError(f"still waiting for {what} after {seconds:.0f}s; see {self.workdir}/bot-*.log")
            await asyncio.sleep(0.05)

    async def all_owned(self, seconds: float = 60) -> None:
        tenants = {m.tenant_id for m in self.members}
        await self.until(lambda: tenants <= self.owners().keys(), "every community owned", seconds)

    # --- the CAD and push ---------------------------------------------------------------------------
    def add_call(self, member: Member) -> int:
        length = self.rng.randint(1, 60)
        return member.cad.add_911(f"Caller {member.index}", "Vespucci Blvd", "help " * length)

    def remove_call(self, member: Member) -> int | None:
        live = list(member.cad.servers[1].emergency)
        if not live:
            return None
        call_id = self.rng.choice(live)
        member.cad.servers[1].emergency.pop(call_id)
        return call_id

    async def push_911(self, member: Member, call_id: int) -> int:
        call = member.cad.servers[1].emergency[call_id]
        status = await self.push(member, "EVENT_911", {"call": dict(call)})
        if status == 200:
            member.pushed.add(call_id)
        return status

    async def push_removed(self, member: Member, call_id: int) -> int:
        return await self.push(member, "EVENT_REMOVE_911", {"callId": call_id})

    async def push(self, member: Member, kind: str, data: dict[str, Any]) -> int:
        """A Sonoran envelope with the community's key, to its push URL at a random live process
        (another one if that one does not answer, as a load balancer does); the status answered."""
        assert self._session is not None
        body = json.dumps({"key": member.api_key, "type": kind, "data": data})
        ports = [self.ports[p.index] for p in self.current if p.alive]
        self.rng.shuffle(ports)
        status = 0
        for port in ports:
            url = f"http://127.0.0.1:{port}{PUSH_PATH}/{member.push_token}"
            try:
                async with self._session.post(url, data=body) as answer:
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if status not in (0, 502, 503):
                break
        self.push_answers[status] = self.push_answers.get(status, 0) + 1
        return status

    def _on_post(self, message: dict[str, Any]) -> None:
        ids = [int(m.group(1)) for e in message["embeds"] if (m := re.search(r"call #(\d+)", e["title"]))]
        self.posted.append((time.monotonic(), int(message["channel_id"]), ids))

    # --- readings ------------------------------------------------------------------------------------
    def polled_since(self, at: float) -> bool:
        """Every community's calls were asked of the CAD after `at` (its clock, time.monotonic())."""
        return all(any(r.operation == "get_calls" and r.at >= at for r in m.cad.requests) for m in self.members)

    async def quiet(self, seconds: float = 1.5, limit: float = 30) -> None:
        """Until Discord has seen no channel write for `seconds`."""
        give_up = time.monotonic() + limit
        writes, since = len(self.fake.writes), time.monotonic()
        while time.monotonic() - since < seconds and time.monotonic() < give_up:
            await asyncio.sleep(0.1)
            if len(self.fake.writes) != writes:
                writes, since = len(self.fake.writes), time.monotonic()

    def tally(self) -> Tally:
        tally = Tally(refused=len(self.fake.refused))
        for member in self.members:
            shown = shown_calls(self.fake, member.channel_id)
            live = set(member.cad.servers[1].emergency)
            tally.shown += len(shown)
            tally.live += len(live)
            where = member.community_id
            tally.duplicates += [f"{where} #{c} x{len(t)}" for c, t in shown.items() if len(t) > 1]
            tally.lost += [f"{where} #{c} (live, not shown)" for c in live if c not in shown]
            tally.lost += [f"{where} #{c} (pushed, never shown)" for c in member.pushed if c not in shown]
            for call_id, titles in shown.items():
                ended = ["(removed)" in title for title in titles]
                if call_id in live and any(ended):
                    tally.stale.append(f"{where} #{call_id} live, shown as {titles}")
                if call_id not in live and not all(ended):
                    tally.stale.append(f"{where} #{call_id} ended, shown as {titles}")
        return tally

    def tenures(self) -> dict[str, list[Tenure]]:
        return tenures_in(self.every, [m.tenant_id for m in self.members])

    def ownership(self, until: float) -> Ownership:
        """Who owned each community up to `until` (time.time(), e.g. when the clean stop began)."""
        return judge(self.tenures(), until)

    def budget(self) -> Budget:
        busiest: dict[str, tuple[int, int]] = {}
        over, limited, requests = [], 0, 0
        for member in self.members:
            stamps: dict[str, list[float]] = {}
            for request in member.cad.requests:
                stamps.setdefault(request.operation, []).append(request.at)
                limited += request.rate_limited
                requests += 1
            for operation, times in stamps.items():
                most, limit = busiest_minute(times), SONORAN_LIMITS.get(operation, 0)
                if most > busiest.get(operation, (0, limit))[0]:
                    busiest[operation] = (most, limit)
                if limit and most > limit:
                    over.append(f"{member.community_id} {operation}: {most} > {limit}")
        return Budget(busiest, over, limited, requests)

    async def leases(self) -> list[tuple[str, str, int]]:
        """The `cluster.leases` rows: (community, owner, fence)."""
        connection = await asyncpg.connect(self.db_url)
        try:
            rows = await connection.fetch("SELECT community, owner, fence FROM cluster.leases ORDER BY community")
        finally:
            await connection.close()
        return [(str(r["community"]), str(r["owner"]), int(r["fence"])) for r in rows]


@contextlib.asynccontextmanager
async def running_cluster(
    server_url: str,
    workdir: Path,
    *,
    processes: int = 3,
    communities: int = 20,
    lease_seconds: float = 3.0,
    seed: int = 29,
) -> AsyncIterator[Cluster]:
    """A cluster seeded on a database of its own on `server_url`, its processes started; every
    process still running is SIGKILLed at the end and the database dropped."""
    cluster = Cluster(workdir, processes=processes, communities=communities, lease_seconds=lease_seconds, seed=seed)
    try:
        await cluster.open(server_url)
        await cluster.start()
        yield cluster
    finally:
        await cluster.close()
