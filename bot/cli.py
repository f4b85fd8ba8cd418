"""The command line: `run`, `check`, `sync`, `health` (started by `python -m bot` or the console script)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import discord

from .cluster import cli as cluster_cli
from .config import ConfigError, Settings, load_settings, resolve_config_path, with_dotenv
from .core import DispatchBot
from .hosting import keys_cli
from .hosting.plan import FEED_POLL_SECONDS
from .hosting.secrets import MasterKeyError, master_keys
from .instance import AlreadyRunning, LockUnavailable, instance_lock
from .intake.listener import PushListenerError, listener_url, raise_open_file_limit, sample_event
from .logs import setup_logging, silence_voice_warnings
from .preflight import (
    Check,
    application_id_from_token,
    describe_sync_error,
    invite_permissions,
    invite_url,
    placeholder_check,
    run_checks,
    sonoran_preflight,
    start_checks,
)
from .sandbox.demo import DiscordUnreachable, run_demo
from .services import open_services
from .shards import new_bot
from .sonoran.redaction import Redactor
from .store import StateFileError
from .tasks import cancel_and_wait
from .version import version

log = logging.getLogger("bot")

EXIT_OK, EXIT_PROBLEM, EXIT_CONFIG = 0, 1, 2
T = TypeVar("T")


def _prog() -> str:
    """`python -m bot`, or the console script's own name when run through it."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m bot" if not script or script == "__main__.py" else script


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="TOML file (default: $SONORAN_BOT_CONFIG, else ./config.toml)",
    )
    prog = _prog()
    parser = argparse.ArgumentParser(
        prog=prog,
        parents=[common],
        description="Sonoran CAD dispatch bot for Discord: slash commands and a live call feed.",
        epilog=f"New here? `{prog} demo` shows the bot at work with nothing set up. Then: `{prog} invite`, "
        f"`{prog} check`, `{prog} sync`, `{prog} run`.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(
        dest="command", metavar="{run,check,sync,health,push-test,demo,invite,keys,cluster}"
    )
    run_ = commands.add_parser(
        "run",
        parents=[common],
        help="run the bot (the default)",
        description="Checks the CAD credentials, then runs the commands and the feed until SIGTERM or SIGINT.",
    )
    run_.add_argument(
        "--shard-ids",
        metavar="IDS",
        help="the gateway shards this process runs, e.g. 0,1 (overrides discord.shard_ids; needs a shard count)",
    )
    run_.add_argument(
        "--shard-count",
        metavar="N",
        help="how many shards in all (overrides discord.shard_count); alone, this process runs all N",
    )
    commands.add_parser(
        "check",
        parents=[common],
        help="validate the configuration and the credentials",
        description="Checks the configuration, the state file, the Sonoran key, plan and servers, the Discord "
        "token, and the bot's permissions in every feed channel. One line per check; exit 1 on any problem, "
        "2 on a configuration error.",
    )
    sync = commands.add_parser(
        "sync",
        parents=[common],
        help="register the slash commands with Discord",
        description="Registers the slash commands: globally (can take up to an hour to show), or in one guild "
        "at once. Needed after the first install and after an upgrade that changes commands.",
    )
    sync.add_argument("--guild", type=int, metavar="ID", help="only this guild (instant); default: global")
    health = commands.add_parser(
        "health",
        parents=[common],
        help="exit 0 if the last feed cycle is recent",
        description="Reads state.health_file, which the running bot touches after each feed cycle; "
        "exit 0 when it is recent (the container HEALTHCHECK).",
    )
    health.add_argument("--max-age", type=float, metavar="SECONDS", help="default: 3 poll intervals + 60 s")
    push_test = commands.add_parser(
        "push-test",
        parents=[common],
        help="send a sample push event to the running bot's listener",
        description="POSTs a push event, with the configured key, to the listener of the bot that is running "
        "with this configuration, and says what it answered. By default the event is one the feed ignores; "
        "with --post it is a civil 911 call #0 from 'push-test', which the feed posts (without a ping).",
    )
    push_test.add_argument("--url", metavar="URL", help="the listener's URL (default: from push.host, port and path)")
    push_test.add_argument("--post", action="store_true", help="send a 911 call the feed posts")
    commands.add_parser(
        "invite",
        parents=[common],
        help="print the link that invites the bot to a server",
        description="Prints the invite link with the application's id (asked of Discord with the token, or read "
        "from the token) and the permissions this configuration needs.",
    )
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="see the bot work against a sandbox CAD: no configuration, no account",
        description="Starts a sandbox CAD on 127.0.0.1 (a simulated community: 911 calls answered, noted, "
        "closed and removed, sent as push events) and runs the real bot against it. Without a Discord token "
        "the feed is shown in this terminal; with one (from the config file or SONORAN_BOT_DISCORD__TOKEN) and "
        "--channel, the bot posts in that channel and answers its slash commands and buttons there.",
    )
    demo.add_argument("--for", dest="seconds", type=float, metavar="SECONDS", help="end after this long (exit 0)")
    demo.add_argument("--channel", type=int, metavar="ID", help="with a token: the channel to post in")
    keys = commands.add_parser(
        "keys",
        parents=[common],
        help="hosted mode: make a master key, or re-encrypt the stored keys under the newest",
        description="The master keys of a hosted deployment (hosting.secret_keys, newest first). `generate` "
        "prints a new one; `rotate` re-encrypts every community's key under the newest, safely beside the "
        "running bot.",
    )
    keys.add_argument("action", choices=["generate", "rotate"])
    commands.add_parser(
        "cluster",
        parents=[common],
        help="list the bot processes sharing the PostgreSQL state, and what each owns",
        description="With a PostgreSQL state.url: each live process (id, host, pid, shards, heartbeat age) and "
        "the communities it owns, then the communities whose lease expired. With SQLite: one process owns "
        "everything.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        environ, from_dotenv = with_dotenv(os.environ)  # ./.env under the process environment
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    path = resolve_config_path(getattr(args, "config", None), environ)
    if command == "demo":
        return demo(path, args.seconds, args.channel, environ)
    if command == "keys" and args.action == "generate":
        return keys_cli.generate()  # needs no configuration
    try:
        settings = load_settings(path, environ, dotenv_names=from_dotenv)
        if command == "run":
            settings = with_shards(settings, getattr(args, "shard_ids", None), getattr(args, "shard_count", None))
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if command == "health":
        return health(settings, args.max_age)
    setup_logging(settings.logging.level, _secrets(settings))
    if command == "check":
        print(f"ok      configuration: {path} is valid")
        return _report(asyncio.run(run_checks(settings)), _secrets(settings))
    if command == "sync":
        return asyncio.run(sync(settings, args.guild))
    if command == "invite":
        return asyncio.run(invite(settings))
    if command == "keys":
        return asyncio.run(keys_cli.rotate(settings))
    if command == "cluster":
        return asyncio.run(cluster_cli.cluster(settings))
    if command == "push-test":
        return asyncio.run(push_test(settings, args.url, post=args.post))
    return asyncio.run(run(settings, config=path))


def with_shards(settings: Settings, shard_ids: str | None, shard_count: str | None) -> Settings:
    """`settings` with `run --shard-ids/--shard-count` over discord.shard_ids/shard_count: the
    count alone means every shard of it; the ids alone keep the file's count. ConfigError (one
    line, naming the flag) when they do not fit."""
    if shard_ids is None and shard_count is None:
        return settings
    discord_ = settings.discord
    count = discord_.shard_count
    if shard_count is not None:
        try:
            count = int(shard_count.strip())
        except ValueError:
            raise ConfigError(f"--shard-count: expected a whole number of shards, got {shard_count!r}") from None
        if count < 1:
            raise ConfigError(f"--shard-count: expected 1 or more shards, got {count}")
    ids = None  # --shard-count alone: every shard of it, whatever ids the file named
    if shard_ids is not None:
        try:
            ids = [int(part) for part in shard_ids.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(
                f"--shard-ids: expected shard numbers separated by commas, e.g. 0,1; got {shard_ids!r}"
            ) from None
        if count is None:
            raise ConfigError("--shard-ids needs --shard-count (or discord.shard_count): how many shards in all")
        if not ids or len(set(ids)) != len(ids) or any(not 0 <= shard < count for shard in ids):
            raise ConfigError(
                f"--shard-ids: expected distinct shard numbers from 0 to {count - 1} (of {count} shards); "
                f"got {shard_ids!r}"
            )
    return settings.model_copy(update={"discord": discord_.model_copy(update={"shard_ids": ids, "shard_count": count})})


def demo(path: Path, seconds: float | None, channel_id: int | None, environ: dict[str, str]) -> int:
    """The demo needs no configuration; a token, if there is one, comes from the file or the variable."""
    token = environ.get("SONORAN_BOT_DISCORD__TOKEN", "").strip() or None
    if token is None and path.is_file():
        try:
            settings = load_settings(path, environ)
        except ConfigError as error:
            print(f"configuration error: {error}", file=sys.stderr)
            return EXIT_CONFIG
        if placeholder_check(settings) is None:  # the example's placeholders: the terminal demo
            token = settings.discord.token.get_secret_value()
            if channel_id is None and settings.feeds:
                channel_id = settings.feeds[0].channel_id  # the config's first feed channel
    if token and not channel_id:
        print("demo: with a Discord token, say which channel to post in: --channel ID", file=sys.stderr)
        return EXIT_CONFIG
    with contextlib.ExitStack() as stack:
        if token:
            setup_logging("INFO", [token])
        else:  # the terminal shows the feed: the log goes to a file, never between the lines of a card
            # a file of this run's own (made anew, readable by its owner only): a fixed name in a
            # shared /tmp could be another user's file, or a link planted there
            fd, name = tempfile.mkstemp(prefix=DEMO_LOG_PREFIX, suffix=".log")
            log_path = Path(name)
            handler = setup_logging("INFO", stream=stack.enter_context(os.fdopen(fd, "w", encoding="utf-8")))
            stack.callback(logging.getLogger().removeHandler, handler)  # before the file closes
            print(f"demo: the bot's log goes to {log_path}", flush=True)
        return _play_demo(seconds, token, channel_id)


DEMO_LOG_PREFIX = "sonoran-dispatch-demo-"


def _play_demo(seconds: float | None, token: str | None, channel_id: int | None) -> int:
    try:
        return asyncio.run(run_demo(sys.stdout, seconds=seconds, token=token, channel_id=channel_id))
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `demo | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except discord.LoginFailure:
        print("demo: Discord rejected the token (discord.token or SONORAN_BOT_DISCORD__TOKEN)", file=sys.stderr)
        return EXIT_PROBLEM
    except DiscordUnreachable as error:
        print(f"demo: {error}", file=sys.stderr)
        return EXIT_PROBLEM


def _secrets(settings: Settings) -> list[str]:
    """What no log line or report may show: the token, the CAD key, hosted mode's master keys (each
    community's key is redacted by its own CAD client)."""
    found = [settings.discord.token.get_secret_value()]
    if settings.sonoran is not None:  # a hosted deployment's file has none
        found.append(settings.sonoran.api_key.get_secret_value())
    if settings.hosting.enabled:
        with contextlib.suppress(MasterKeyError):  # `check` and `run` say what is wrong with them
            found.extend(master_keys(settings.hosting))
    return [secret for secret in found if secret]


def report_lines(checks: list[Check], *, secrets: Sequence[str]) -> list[str]:
    """What `check` prints: a line per check and a count, with the secrets taken out of every line
    (the CAD's and Discord's words may repeat what they were sent)."""
    redact = Redactor(*secrets)
    problems = sum(not c.ok for c in checks)
    return [*(redact(check.line()) for check in checks), f"{len(checks) - problems} ok, {problems} problem(s)"]


def _report(checks: list[Check], secrets: Sequence[str]) -> int:
    for line in report_lines(checks, secrets=secrets):
        print(line)
    return EXIT_PROBLEM if any(not c.ok for c in checks) else EXIT_OK


def startup_line(settings: Settings, config: Path | None) -> str:
    """Who is starting: the version, the configuration file, the CAD API and what the bot serves."""

    def count(items: Sequence[object], one: str) -> str:
        return f"{len(items)} {one}{'' if len(items) == 1 else 's'}"

    served = [
        count(settings.feeds, "feed")
        + (f" (channel {', '.join(str(f.channel_id) for f in settings.feeds)})" if settings.feeds else ""),
        count(settings.boards, "unit board"),
        count(settings.alerts, "panic alert channel"),
    ]
    if settings.push.enabled:
        push = settings.push
        served.append(
            f"push listener on {push.host}:{push.port}{push.path}" + (" + websocket" if push.websocket else "")
        )
    if settings.audit.channel_id:
        served.append(f"audit channel {settings.audit.channel_id}")
    served.append("slash commands")
    where = str(config.resolve()) if config is not None else "(built in code)"
    shards = settings.discord
    if shards.shard_count is not None:
        served.append(f"gateway shards {','.join(map(str, shards.shard_list()))} of {shards.shard_count}")
    if settings.hosting.enabled:
        return (
            f"sonoran-dispatch-bot {version()} starting in hosted mode: config {where}; "
            f"registry {settings.state.path}; serves the communities set up with /setup, {', '.join(served[3:])}"
        )
    return (
        f"sonoran-dispatch-bot {version()} starting: config {where}; Sonoran API v{settings.cad.api_version} "
        f"at {settings.cad.base_url}; serves {', '.join(served)}"
    )


async def run(settings: Settings, *, config: Path | None = None) -> int:
    """Checks the CAD credentials, then runs until SIGTERM/SIGINT; 0 on a clean stop.

    The signal handlers go in first: a stop asked for at any moment, even while the CAD or
    Discord is not answering, ends the run within moments, with exit 0.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("%s", startup_line(settings, config))
    try:
        # cluster mode: processes share the state on PostgreSQL by design, each community held by
        # one of them at a time (leases), so no file lock stands between them
        with contextlib.nullcontext() if settings.clustered else instance_lock(settings.state.path):
            return await _run(settings, stop)
    # another bot on the state file, its lock file, a taken push port, the state file, a full disk,
    # hosted mode's master keys
    except (AlreadyRunning, LockUnavailable, PushListenerError, StateFileError, MasterKeyError, OSError) as error:
        log.error("not starting: %s", error)
        return EXIT_PROBLEM
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _run(settings: Settings, stop: asyncio.Event) -> int:
    soft, hard = raise_open_file_limit()  # idle connections to the listener must not starve the polls
    log.debug("open-file limit: %s (hard %s)", soft, hard)
    for check in start_checks(settings):  # what no CAD or Discord answer can make work
        log.error("not starting: %s: %s -> %s", check.name, check.detail, check.fix)
        return EXIT_PROBLEM
    if settings.hosting.enabled:  # the bot opens the registry and each community's services itself
        return await _serve(new_bot(settings), settings, stop)
    # Built here and handed to the bot, as in discord.py's advanced_startup example.
    async with open_services(settings) as services:
        preflight = await _unless_stopped(stop, sonoran_preflight(settings, services.sonoran))
        if preflight is None:
            log.info("signal received during the CAD check: stopped")
            return EXIT_OK
        for check in preflight[0]:
            if check.fatal:
                log.error("not starting: %s -> %s", check.detail, check.fix)
                return EXIT_PROBLEM
            (log.info if check.ok else log.warning)("%s: %s", check.name, check.detail)
        return await _serve(new_bot(settings, services), settings, stop)


async def _serve(bot: DispatchBot, settings: Settings, stop: asyncio.Event) -> int:
    """Logs in and holds the gateway session until `stop` is set or Discord ends it."""
    async with bot:
        if not await _login(bot, settings, stop):
            return EXIT_OK if stop.is_set() else EXIT_PROBLEM
        runner = asyncio.create_task(bot.connect(), name="gateway")
        stopper = asyncio.create_task(stop.wait(), name="signal")
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper.done():
            log.info("signal received: shutting down")
            await bot.close()
        stopper.cancel()
        try:
            await runner
        except discord.PrivilegedIntentsRequired:
            log.error("Discord refused the gateway intents")
            return EXIT_PROBLEM
    log.info("stopped cleanly")
    return EXIT_OK


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """The result of `work`, or None (with `work` cancelled) if `stop` is set first."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    await cancel_and_wait(task)
    return None


async def _login(bot: DispatchBot, settings: Settings, stop: asyncio.Event) -> bool:
    """Logs in (which runs setup_hook), retrying while Discord is unreachable; False to give up."""
    delay = 5.0
    while not stop.is_set():
        try:
            if await _unless_stopped(stop, _logged_in(bot, settings.discord.token.get_secret_value())):
                return True
            break
        except discord.LoginFailure:
            log.error("not starting: Discord rejected the token (discord.token)")
            return False
        except (aiohttp.ClientConnectionError, discord.DiscordServerError, TimeoutError) as error:
            log.warning("cannot reach Discord (%s); retrying in %.0fs", type(error).__name__, delay)
            # each attempt opens a new HTTP session on a new connector: close this one's, for good
            await bot.http.close()
            bot.http.connector = discord.utils.MISSING
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 300.0)
    log.info("signal received before login: stopped")
    return False


async def _logged_in(bot: DispatchBot, token: str) -> bool:
    await bot.login(token)
    return True


async def invite(settings: Settings) -> int:
    """Prints the invite link for this bot and this configuration; 0, or 1 when the id is unknown."""
    token = settings.discord.token.get_secret_value()
    silence_voice_warnings()
    client = discord.Client(intents=discord.Intents.none())
    unreachable = ""
    try:
        await client.login(token)  # reads /oauth2/applications/@me
        application_id = client.application_id
    except discord.LoginFailure:
        print("Discord rejected the token (discord.token): copy it again from the Developer Portal", file=sys.stderr)
        return EXIT_PROBLEM
    except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as error:
        application_id = application_id_from_token(token)
        unreachable = f"cannot reach Discord ({type(error).__name__})"
        if application_id is None:
            print(f"{unreachable}, and the token holds no application id; try again", file=sys.stderr)
            return EXIT_PROBLEM
    finally:
        await client.close()
    permissions, labels = invite_permissions(settings)
    print(invite_url(application_id, permissions))
    granted = ", ".join(labels) + " (where it posts: feeds, boards, alerts, audit)" if labels else "none"
    print(f"application {application_id}; scopes bot and applications.commands; permissions: {granted}")
    if unreachable:
        print(f"{unreachable}: the application id was read from the token")
    if any(f.ping_role_id for f in settings.feeds) or any(a.ping_role_id for a in settings.alerts):
        print("a ping role that is not mentionable also needs Mention Everyone in its channel (check says which)")
    return EXIT_OK


async def sync(settings: Settings, guild_id: int | None) -> int:
    where = f"guild {guild_id}" if guild_id else "all guilds (global commands can take up to an hour to appear)"
    # declares the commands only: builds no feed engine, binds no port, opens no state file
    async with contextlib.AsyncExitStack() as stack:
        services = None  # hosted mode: no community of its own, nor any opened for this
        if not settings.hosting.enabled:
            services = await stack.enter_async_context(open_services(settings, with_store=False))
        bot = await stack.enter_async_context(DispatchBot(settings, services, sync_on_start=False, serve=False))
        try:
            await bot.login(settings.discord.token.get_secret_value())
            count = await bot.sync_commands(guild_id)
        except discord.LoginFailure:
            print("Discord rejected the token (discord.token)", file=sys.stderr)
            return EXIT_PROBLEM
        except discord.HTTPException as error:
            print(describe_sync_error(error, bot.application_id), file=sys.stderr)
            return EXIT_PROBLEM
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            print(f"cannot reach Discord ({type(error).__name__}); check the network and try again", file=sys.stderr)
            return EXIT_PROBLEM
    print(f"registered {count} commands in {where}")
    return EXIT_OK


def health(settings: Settings, max_age: float | None) -> int:
    path = settings.state.health_file
    if path is None:
        print(
            "health: state.health_file is not set, so the running bot leaves nothing to read; set it in [state] "
            '(health_file = "data/last-poll", on the same volume as state.path) and restart the bot',
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    poll_seconds = settings.sonoran.poll_seconds if settings.sonoran is not None else FEED_POLL_SECONDS
    limit = max_age if max_age is not None else poll_seconds * 3 + 60
    with contextlib.suppress(OSError, ValueError, IndexError):
        stamp, _, cad = path.read_text().strip().partition(" ")
        age = time.time() - float(stamp)
        said = f" ({cad})" if cad else ""
        if age <= limit:
            print(f"healthy: the feed loop ran {age:.0f}s ago{said}")
            return EXIT_OK
        print(f"unhealthy: the feed loop last ran {age:.0f}s ago (limit {limit:.0f}s){said}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"unhealthy: {path} missing or unreadable", file=sys.stderr)
    return EXIT_PROBLEM


async def push_test(settings: Settings, url: str | None, *, post: bool) -> int:
    if settings.sonoran is None:
        print(
            "push-test: in hosted mode each community has its own push URL and key; /setup show gives the URL, "
            "and the CAD's own push test (Admin > In-Game Integration) sends to it"
        )
        return EXIT_PROBLEM
    target = url or listener_url(settings.push.host, settings.push.port, settings.push.path)
    body = sample_event(settings.cad.api_key.get_secret_value(), post=post)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(target, data=body, headers={"Content-Type": "application/json"}) as response,
        ):
            text = (await response.text())[:200]
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        print(f"{target}: no answer ({type(error).__name__}); is the bot running with push.enabled = true?")
        if settings.push.allow_from:
            print("push.allow_from is set: the listener closes connections from other addresses (this one too?)")
        return EXIT_PROBLEM
    print(f"{target}: HTTP {response.status} {text!r}")
    if response.status == 401:
        print("the listener refused the key: is it the same sonoran.api_key as the running bot's?")
    return EXIT_OK if response.status == 200 else EXIT_PROBLEM
