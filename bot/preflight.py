"""`python -m bot check`: is everything the bot needs in place? One line per check.

The Sonoran part of it is also what `run` checks before it starts (`sonoran_preflight`).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import socket
from dataclasses import dataclass

import aiohttp
import discord

from .config import PushSettings, Settings
from .delivery.faults import FEED_PERMISSION_BITS, FEED_PERMISSIONS, missing_feed_permissions
from .instance import LockUnavailable, in_use
from .intake.listener import listener_url, privileged_port
from .logs import silence_voice_warnings
from .messages import user_message
from .services import sonoran_client
from .sonoran import (
    BadCredentials,
    BadReply,
    CadUnavailable,
    ConfigurationProblem,
    NotFound,
    NotLinked,
    PlanInfo,
    RateLimited,
    RequestRejected,
    SonoranClient,
    SonoranError,
    WrongApiUrl,
)
from .store import SCHEMA_VERSION, StateFileError, Store

log = logging.getLogger(__name__)

GATEWAY_TIMEOUT = 30.0
# the values config.example.toml ships with: left in place, nothing can work
EXAMPLE_PLACEHOLDERS = {
    "discord.token": "put-the-bot-token-here",
    "sonoran.api_key": "put-the-api-key-here",
    "sonoran.community_id": "mycommunity",
    "feeds[].channel_id": "123456789012345678",
}


INVITE_PERMISSIONS = FEED_PERMISSION_BITS.value
MISSING_ACCESS = 50001


def invite_url(application_id: int | None, permissions: int = INVITE_PERMISSIONS) -> str:
    """The invite link with both scopes the bot needs and the feed's permissions."""
    client = application_id or "YOUR_APPLICATION_ID"
    return (
        f"https://discord.com/oauth2/authorize?client_id={client}"
        f"&scope=bot+applications.commands&permissions={permissions}"
    )


def invite_permissions(settings: Settings) -> tuple[int, list[str]]:
    """What the configuration needs granted: the channel permissions wherever it posts (feeds,
    boards, alerts, the audit); none for the slash commands alone."""
    if not (settings.feeds or settings.boards or settings.alerts or settings.audit.channel_id):
        return 0, []
    return INVITE_PERMISSIONS, [label for _, label in FEED_PERMISSIONS]


def application_id_from_token(token: str) -> int | None:
    """A bot token's first segment is its user id, base64: a bot's user id is its application's."""
    first = token.split(".", 1)[0]
    try:
        text = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and len(text) >= 15 else None


def describe_sync_error(error: discord.HTTPException, application_id: int | None) -> str:
    if error.code == MISSING_ACCESS or isinstance(error, discord.Forbidden):
        return (
            "Discord refused to register the commands (50001 Missing Access): the bot was invited without the "
            f"applications.commands scope, or is not in that guild. Invite it again with {invite_url(application_id)}"
        )
    return f"Discord refused to register the commands: HTTP {error.status} ({error.text[:200]})"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = False  # `run` refuses to start on it (as opposed to a CAD that is only unreachable)
    warning: bool = False  # works, but may not be what the admin wants: said, not counted as a problem

    def line(self) -> str:
        status = "PROBLEM" if not self.ok else "warning" if self.warning else "ok     "
        text = f"{status} {self.name}: {self.detail}"
        return f"{text}\n        -> {self.fix}" if self.fix and (self.warning or not self.ok) else text


def plan_gaps(plan: PlanInfo) -> list[str]:
    gaps = []
    if not plan.has_911_writes:
        gaps.append("/911 and /remove911 (Standard)")
    if not plan.has_call_reads:
        gaps.append("/calls, /note, /close, autocomplete and the feed (Plus)")
    return gaps


def units_plan_check(settings: Settings, plan: PlanInfo) -> Check | None:
    """Unit boards and panic alerts read the units list, which Sonoran's v1 API restrictions table
    puts at Plus; says so, with what the CAD answered about the plan."""
    if not (settings.boards or settings.alerts):
        return None
    if settings.cad.api_version == 2:
        answer = f"GET /v2/general/version answered version {plan.level}, name {plan.name}"
    else:
        answer = f"GET_VERSION answered {plan.level} ({plan.name})"
    needs = "unit boards and panic alerts read the units list, which needs Plus (Sonoran's API restrictions table)"
    if plan.has_call_reads:
        return Check("sonoran plan (units)", True, f"{needs}; {answer}")
    return Check(
        "sonoran plan (units)",
        False,
        f"{needs}; {answer}: the boards stay empty and no panic is alerted from the list",
        "upgrade the Sonoran plan to Plus, or remove [[boards]] and [[alerts]]",
    )


async def sonoran_preflight(settings: Settings, client: SonoranClient) -> tuple[list[Check], PlanInfo | None]:
    """The CAD key, plan and server ids. Raises nothing: every outcome is a Check."""
    checks: list[Check] = []
    version = settings.cad.api_version
    try:
        plan = await client.get_version()
    except WrongApiUrl as error:
        return [not_the_cad(settings, error)], None
    except ConfigurationProblem as error:
        fix = (
            "check sonoran.api_key and sonoran.community_id (CAD: Admin > In-Game Integration > API)"
            if isinstance(error, BadCredentials)
            else "check sonoran.api_url, sonoran.api_version and the community's plan"
        )
        where = f"the CAD at sonoran.api_url {settings.cad.base_url}"
        return [Check("sonoran key", False, f"{where}: {user_message(error)} ({error})", fix, fatal=True)], None
    except RateLimited as error:
        return [Check("sonoran key", False, f"the CAD did not answer: {error}", "try again in a minute")], None
    except CadUnavailable as error:
        where = f"sonoran.api_url {settings.cad.base_url}"
        return [
            Check(
                "sonoran key",
                False,
                f"the CAD at {where} did not answer: {error}",
                "check sonoran.api_url (and that this machine reaches it), or try again in a minute",
            )
        ], None
    except (BadReply, NotFound) as error:
        # something answered, but not as the CAD's version request does: polling it would never work
        return [not_the_cad(settings, error)], None
    except RequestRejected as error:
        # the CAD (or a firewall before it) refused the request in words of its own: a block, a
        # maintenance, a WAF. Said as it is, and not fatal: the address is not what is wrong.
        return [
            Check(
                "sonoran key",
                False,
                f"the CAD at sonoran.api_url {settings.cad.base_url} refused the version request: {error}",
                "see what it said; if it persists, ask Sonoran support (with the trace id, if any)",
            )
        ], None
    except SonoranError as error:
        return [
            Check(
                "sonoran key",
                False,
                f"{error} (sonoran.api_url {settings.cad.base_url})",
                "check sonoran.api_url and sonoran.api_version",
            )
        ], None
    community = "key and community accepted" if version == 1 else "key accepted (v2 identifies the community by it)"
    checks.append(Check("sonoran key", True, f"{community}; plan {plan.name} ({plan.level}), API v{version}"))
    gaps = plan_gaps(plan)
    if gaps:
        checks.append(
            Check(
                "sonoran plan",
                False,
                f"plan {plan.name} leaves out: {'; '.join(gaps)}",
                "upgrade the Sonoran plan, or expect those features to answer 'needs a higher plan'",
            )
        )
    if (units := units_plan_check(settings, plan)) is not None:
        checks.append(units)
    if settings.commands.dispatchers_from_cad:
        checks.append(await _accounts_check(settings, client))
    if settings.lookups.enabled:
        checks.append(lookups_check(settings, plan))
    wanted = sorted({settings.cad.server_id, *settings.event_server_ids})
    try:
        servers = {server.id: server for server in await client.get_servers()}
    except SonoranError as error:
        checks.append(Check("sonoran servers", False, f"could not list CAD servers: {error}", "try again later"))
        return checks, plan
    missing = [s for s in wanted if s not in servers]
    if missing:
        known = ", ".join(str(s) for s in servers) or "none"
        checks.append(
            Check(
                "sonoran servers",
                False,
                f"server id(s) {missing} are not in the CAD (it has: {known})",
                "fix sonoran.server_id / feeds[].server_id",
            )
        )
    else:
        names = ", ".join(f"{s} ({servers[s].name or 'unnamed'})" for s in wanted)
        checks.append(Check("sonoran servers", True, f"configured servers exist: {names}"))
    return checks, plan


def lookups_check(settings: Settings, plan: PlanInfo) -> Check:
    """[lookups]: the plan has them (Plus, as the v1 restrictions table says), and someone may use them."""
    name, rules = "lookups", settings.lookups
    if not plan.has_call_reads:  # Plus or higher, by its level or by its name (v2 may send either)
        return Check(
            name, False, "lookups need the Plus plan or higher", "upgrade the plan, or set lookups.enabled = false"
        )
    by_cad = rules.allow_cad_rights and settings.cad.api_version == 2
    if not rules.role_ids and not by_cad:
        why = "v1 cannot read CAD rights" if rules.allow_cad_rights else "lookups.allow_cad_rights is off"
        return Check(name, False, f"nobody may look up: lookups.role_ids is empty and {why}", "set lookups.role_ids")
    who = f"{len(rules.role_ids)} role(s)" + (" and CAD police, dispatch or supervisor rights" if by_cad else "")
    budget = settings.cad.rate_limits.lookup
    return Check(name, True, f"on for {who}; at most {budget} lookups a minute (Sonoran allows 30 per key)")


def not_the_cad(settings: Settings, error: SonoranError) -> Check:
    """The address answers, but not as Sonoran's API does (a path such as /api/v2 added to it, a
    web page, another service): `check` and `run` refuse it alike."""
    url = settings.cad.base_url
    return Check(
        "sonoran key",
        False,
        f"sonoran.api_url {url} answers, but not as the Sonoran CAD API does ({error})",
        "set sonoran.api_url to the API's base address, without any path (https://api.sonorancad.com, "
        "the default), and check sonoran.api_version",
        fatal=True,
    )


async def _accounts_check(settings: Settings, client: SonoranClient) -> Check:
    """commands.dispatchers_from_cad: may this key read accounts by Discord id? (A lookup for an id
    nobody has: "not linked" is the answer of a key that may.)"""
    name = "dispatchers from the CAD"
    if settings.cad.api_version != 2:
        return Check(name, False, "commands.dispatchers_from_cad needs API v2", "set sonoran.api_version = 2")
    try:
        await client.get_account(discord_id=0)
    except NotLinked:
        return Check(name, True, "the key may read accounts by Discord id (10 lookups a minute, cached)")
    except SonoranError as error:
        return Check(name, False, f"the key cannot read accounts: {user_message(error)}", "check the plan and key")
    return Check(name, True, "the key may read accounts by Discord id")


def placeholder_check(settings: Settings) -> Check | None:
    values: dict[str, str | list[str]] = {
        "discord.token": settings.discord.token.get_secret_value(),
        "feeds[].channel_id": [str(feed.channel_id) for feed in settings.feeds],
    }
    if settings.sonoran is not None:  # a hosted deployment's file has none
        values["sonoran.api_key"] = settings.sonoran.api_key.get_secret_value()
        values["sonoran.community_id"] = settings.sonoran.community_id
    left = [
        key
        for key, example in EXAMPLE_PLACEHOLDERS.items()
        if key in values and (values[key] == example or (isinstance(values[key], list) and example in values[key]))
    ]
    if not left:
        return None
    return Check(
        "configuration placeholders",
        False,
        f"still the example's values: {', '.join(left)}",
        "replace them with your own (secrets are best set as SONORAN_BOT_DISCORD__TOKEN and "
        "SONORAN_BOT_SONORAN__API_KEY)",
        fatal=True,
    )


def served_check(settings: Settings) -> Check | None:
    """Nothing to post in: the bot would only answer slash commands. Said, not counted (a bot for
    the commands alone is a choice)."""
    if settings.feeds or settings.boards or settings.alerts:
        return None
    return Check(
        "configuration",
        True,
        "no [[feeds]], [[boards]] or [[alerts]]: the bot posts nothing, it only answers slash commands",
        "add a [[feeds]] table with channel_id = the id of the channel for the calls (see config.example.toml)",
        warning=True,
    )


def start_checks(settings: Settings) -> list[Check]:
    """What `run` refuses to start on before it asks the CAD or Discord anything: the example's
    placeholders, and a websocket without its extra."""
    checks = [check for check in (placeholder_check(settings),) if check is not None]
    if settings.push.enabled and settings.push.websocket:
        checks.append(websocket_check(settings))
    return [check for check in checks if check.fatal]


def push_checks(settings: Settings) -> list[Check]:
    """Can the listener bind, and which URL goes into the FiveM config or the CAD's server entry."""
    push = settings.push
    if not push.enabled:
        return []
    name = "push listener"
    family = socket.AF_INET6 if ":" in push.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((push.host, push.port))
    except OSError as error:
        why = privileged_port(push.port) if error.errno == errno.EACCES else ""
        checks = [
            Check(
                name,
                False,
                f"cannot bind {push.host}:{push.port}: {error.strerror or error}" + (f" ({why})" if why else ""),
                "change push.port"
                if why
                else "if the bot is running, this is expected (try `push-test`); else change push.port or push.host",
            )
        ]
    else:
        checks = [Check(name, True, f"can bind {push.host}:{push.port}. {_push_where(settings)} {_push_from(push)}")]
    if push.websocket:
        checks.append(websocket_check(settings))
    return checks


def _push_where(settings: Settings) -> str:
    """Where events are sent: each community's own URL (hosted mode), else the FiveM resource's."""
    push = settings.push
    if settings.hosting.enabled:
        return (
            "Each community has its own push URL, shown by /setup show (a random token after push.path). Put TLS "
            "in front of it, or keep it on a private network: the key travels in the body."
        )
    url = listener_url(push.host, push.port, push.path)
    servers = ", ".join(f"{url}/{server}" for server in settings.event_server_ids) or "(no feeds)"
    return (
        "With a game server, forward from the FiveM resource: "
        f"enablePushEventForwarding = true and pushEventForwardUrl = one of {servers} (with this machine's "
        f"address for 127.0.0.1); events sent to {url} count for server {settings.push_server_id}. Put TLS "
        "in front of it, or keep it on a private network: the key travels in the body."
    )


def _push_from(push: PushSettings) -> str:
    if push.allow_from:
        return f"Connections are taken from {', '.join(push.allow_from)} only (push.allow_from)."
    return "Connections are taken from anywhere (push.allow_from is empty)."


def websocket_check(settings: Settings) -> Check:
    """The bot's own SignalR sessions take a server id's events away from anyone else's: the FiveM
    resource v4 always holds one for its server id, and the CAD then sends nothing over HTTP."""
    name = "push websocket"
    try:
        import pysignalr.client  # noqa: F401  (only whether the extra is installed)
    except ImportError:
        return Check(
            name,
            False,
            "push.websocket = true, but pysignalr is not installed",
            'pip install ".[websocket]" in the checkout, or set push.websocket = false',
            fatal=True,
        )
    shared = ", ".join(str(server) for server in settings.event_server_ids)
    return Check(
        name,
        True,
        f"the bot opens its own SignalR session for CAD server(s) {shared}, the ids its feeds use. If a game "
        "server runs Sonoran's FiveM resource v4 on one of them, the two sessions compete: the game server "
        "may lose its events, or the bot may get none",
        "with a game server, set push.websocket = false and forward from the FiveM resource "
        "(enablePushEventForwarding, pushEventForwardUrl); keep the websocket for a CAD server id of the bot's own",
        warning=True,
    )


async def state_check(settings: Settings) -> Check:
    """Opens the state file as `run` will: creates or migrates it, and writes to it. On
    PostgreSQL (state.url): connects, creates or migrates the community's schema."""
    if settings.state.postgres_url is not None:
        try:
            store = await Store.open_state(settings.state, settings.cad.community_id)
        except StateFileError as error:
            return Check("state file", False, str(error), "see above", fatal=True)
        where = store.db.describe()
        await store.close()
        return Check("state file", True, f"{where}: opened and written (schema {SCHEMA_VERSION})")
    path = settings.state.path
    try:
        store = await Store.open(path)
    except StateFileError as error:
        return Check("state file", False, str(error), "see above", fatal=True)
    await store.close()
    try:
        running = in_use(path)
    except LockUnavailable as error:
        return Check("state file", False, str(error), "see above", fatal=True)
    if running is not None:  # the running bot's: `run` would stop on it, `check` beside it is fine
        return Check("state file", True, f"{path}: opened; in use by a running bot ({running.pid or 'pid unknown'})")
    return Check("state file", True, f"{path}: opened and written (schema {SCHEMA_VERSION})")


async def discord_checks(settings: Settings) -> list[Check]:
    """Token, then (over a short gateway session) every feed channel and the bot's permissions there."""
    intents = discord.Intents.none()
    intents.guilds = True
    silence_voice_warnings()
    client = discord.Client(intents=intents)
    checks: list[Check] = []
    try:
        try:
            await client.login(settings.discord.token.get_secret_value())
        except discord.LoginFailure:
            return [
                Check(
                    "discord token",
                    False,
                    "Discord rejected the token",
                    "copy the token again from the Developer Portal (Bot > Reset Token)",
                )
            ]
        except discord.HTTPException as error:  # Discord answered, with an error of its own (5xx)
            return [
                Check("discord token", False, f"Discord answered HTTP {error.status}: not the token", "try again later")
            ]
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            return [
                Check(
                    "discord token",
                    False,
                    f"cannot reach Discord ({type(error).__name__}): the network, not the token (it was not checked)",
                    "check this machine's connection to discord.com (DNS, firewall, proxy) and run check again",
                )
            ]
        checks.append(Check("discord token", True, f"accepted: logged in as {client.user}"))
        if not (settings.feeds or settings.boards or settings.alerts or settings.discord.guild_ids) and not (
            settings.audit.channel_id
        ):
            return checks
        session = asyncio.create_task(client.connect(reconnect=False), name="check-gateway")
        ready = asyncio.create_task(client.wait_until_ready(), name="check-ready")
        await asyncio.wait({session, ready}, timeout=GATEWAY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            failure = session.exception() if session.done() else None
            detail = f"gateway session failed: {type(failure).__name__}" if failure else "no READY from the gateway"
            return [*checks, Check("discord gateway", False, detail, "try again in a minute")]
        missing_guilds = [g for g in settings.discord.guild_ids if client.get_guild(g) is None]
        if missing_guilds:
            checks.append(
                Check(
                    "discord guilds",
                    False,
                    f"discord.guild_ids: the bot is not in {', '.join(map(str, missing_guilds))}",
                    f"invite it there ({invite_url(client.application_id)}), or remove the id",
                )
            )
        elif settings.discord.guild_ids:
            checks.append(Check("discord guilds", True, f"the bot is in all {len(settings.discord.guild_ids)}"))
        for feed in settings.feeds:
            checks.append(_channel_check(client, feed.channel_id))
            if feed.ping_role_id:
                checks.append(ping_role_check(client, feed.channel_id, feed.ping_role_id))
        for board in settings.boards:
            checks.append(_channel_check(client, board.channel_id, "unit board channel"))
        for alert in settings.alerts:
            checks.append(_channel_check(client, alert.channel_id, "panic alert channel"))
            if alert.ping_role_id:
                checks.append(ping_role_check(client, alert.channel_id, alert.ping_role_id, "alerts[].ping_role_id"))
        if settings.audit.channel_id:
            checks.append(_channel_check(client, settings.audit.channel_id, "audit channel"))
        return checks
    finally:
        await client.close()


CHANNEL_KEYS = {
    "feed channel": "feeds[].channel_id",
    "audit channel": "audit.channel_id",
    "unit board channel": "boards[].channel_id",
    "panic alert channel": "alerts[].channel_id",
}


def _channel_check(client: discord.Client, channel_id: int, what: str = "feed channel") -> Check:
    name = f"{what} {channel_id}"
    channel = client.get_channel(channel_id)
    if not isinstance(channel, discord.abc.GuildChannel) or not isinstance(channel, discord.abc.Messageable):
        return Check(
            name,
            False,
            "the bot cannot see this channel",
            f"invite the bot to that server and give it View Channel there, or fix {CHANNEL_KEYS[what]}",
        )
    granted = channel.permissions_for(channel.guild.me)
    missing = missing_feed_permissions(granted)
    where = f"#{channel.name} in {channel.guild.name}"
    if missing:
        return Check(
            name,
            False,
            f"{where}: missing {', '.join(missing)}",
            "grant those permissions to the bot's role in that channel",
        )
    return Check(name, True, f"{where}: can post, embed and edit")


def ping_role_check(client: discord.Client, channel_id: int, role_id: int, key: str = "feeds[].ping_role_id") -> Check:
    """Can the role be pinged in its channel (`check`, and `run` once connected); `key` is where it is set."""
    name = f"ping role {role_id}"
    channel = client.get_channel(channel_id)
    if not isinstance(channel, discord.abc.GuildChannel):
        return Check(name, False, "cannot check it: its channel is not visible", "fix the channel first")
    role = channel.guild.get_role(role_id)
    if role is None:
        return Check(name, False, f"no such role in {channel.guild.name}", f"fix {key}")
    if not role.mentionable and not channel.permissions_for(channel.guild.me).mention_everyone:
        return Check(
            name,
            False,
            f"@{role.name} is not mentionable and the bot lacks Mention Everyone: pings would notify nobody",
            "make the role mentionable (Server Settings > Roles), or grant the bot Mention Everyone in that channel",
        )
    return Check(name, True, f"@{role.name} can be pinged in #{channel.name}")


async def run_checks(settings: Settings) -> list[Check]:
    placeholders = placeholder_check(settings)
    if settings.hosting.enabled:
        # each community's CAD is checked by /setup cad; here: the deployment's own secrets and state
        from .hosting.checks import hosting_checks  # (it imports Check from here)

        return [
            *([placeholders] if placeholders else []),
            *await hosting_checks(settings),
            *push_checks(settings),
            *await discord_checks(settings),
        ]
    served = served_check(settings)
    async with aiohttp.ClientSession() as session:
        sonoran, _ = await sonoran_preflight(settings, sonoran_client(session, settings.cad))
    return [
        *([placeholders] if placeholders else []),
        *sonoran,
        await state_check(settings),
        *push_checks(settings),
        *await discord_checks(settings),
        *([served] if served else []),
    ]
