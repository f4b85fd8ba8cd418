"""Every sentence a member is told when something goes wrong, in one map from error to text.

The tree, the views and `check` all come here (after Red's `redbot/core/tree.py`). The errors
themselves carry data only; the words are chosen here, and what came from a player or the CAD is
escaped before it is quoted.
"""

from __future__ import annotations

import discord
from discord import app_commands

from . import sonoran as cad
from .community import NoCommunity
from .embeds import clean
from .hosting.errors import KeyInUse, KeyMismatch, NotSetUp, SetupProblem
from .lookups.errors import BadLookup, ChannelNotAllowed, LookupLimited, LookupsOff, NotAllowedToLookUp
from .permissions import BlockedFromCalling, NotAllowedToCall, NotDispatcher, NotYourButtons
from .units.records import Alert
from .units.render import alert_who


class TooManyOpenCalls(app_commands.CheckFailure):
    """The member's own 911 calls still in the CAD's list reach `commands.max_open_911_per_user`."""

    def __init__(self, open_calls: int) -> None:
        super().__init__()
        self.open_calls = open_calls


class NotAChoice(app_commands.CheckFailure):
    """A menu value the bot never offered (a crafted interaction)."""


class NotAStatus(app_commands.CheckFailure):
    """A status the community's labels do not have (a crafted interaction)."""


class WaitBeforeAgain(app_commands.CheckFailure):
    """A member's cooldown or share of the minute's budget for /status, /panic or /units."""

    def __init__(self, retry_after: float) -> None:
        super().__init__()
        self.retry_after = retry_after


class ServerNotConfigured(app_commands.CheckFailure):
    """A CAD server the bot is not configured for (no feed, board or alert, not the main one)."""

    def __init__(self, server_id: int) -> None:
        super().__init__()
        self.server_id = server_id


class EmptyText(app_commands.CheckFailure):
    """A required text is blank (Discord's client refuses it; a crafted request may not)."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what


class TextTooLong(app_commands.CheckFailure):
    """A text over the bot's own bound (Discord's client keeps it; a crafted request may not)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__()
        self.what = what
        self.limit = limit


NOTE_LIMIT = 1000  # characters in a note: /note's option and the card's form alike


def text_problem(what: str, text: str, limit: int) -> EmptyText | TextTooLong | None:
    """Why `text` cannot be sent as `what`, or None."""
    if not text.strip():
        return EmptyText(what)
    if len(text) > limit:
        return TextTooLong(what, limit)
    return None


GENERIC = "Something went wrong on the bot's side. The admins can find the details in the bot's log."


def not_shown_here(call_id: int) -> str:
    """A click on a call this channel never showed (a crafted interaction)."""
    return f"Call #{call_id} is not shown in this channel."


def no_longer_active(call_id: int) -> str:
    return f"Call #{call_id} is no longer active."


def what_to_do(call_id: int) -> str:
    """The panel a card's menu opens."""
    return f"Call #{call_id}: what should be done?"


def alert_not_here() -> str:
    """A click on a panic alert this channel never showed (a crafted interaction)."""
    return "That panic alert is not shown in this channel."


def acknowledged(alert: Alert, *, took: bool) -> str:
    """The answer to Acknowledge: done, or who was first, or that the panic is over."""
    if took:
        return f"You acknowledged the panic of {alert_who(alert)}. The alert shows it."
    if alert.acked_by:
        return f"{clean(alert.acked_by, 80)} already acknowledged this panic."
    return "This panic has already cleared."


def units_not_read(server_id: int) -> str:
    return (
        f"The bot does not read the units of CAD server {server_id}: no unit board or panic alert is set up "
        "for it. Ask an admin (see [[boards]] and [[alerts]] in docs/usage.md)."
    )


def units_not_yet_known() -> str:
    return "The bot has not read the units list yet (it reads it about once a minute). Try again shortly."


def status_set(label: str) -> str:
    return f"Your units' status is now {clean(label, 50)}. The unit board shows it after the next units read."


def status_unchanged(label: str) -> str:
    return f"The CAD changed none of your units: their status was already {clean(label, 50)}, or none is on duty."


def panic_unchanged(panic: bool) -> str:
    return (
        f"The CAD changed none of your units: their panic was already {'on' if panic else 'off'}, or none is on duty."
    )


def panic_question() -> str:
    return (
        "Turn on the panic of your units on duty? The CAD shows it to dispatch at once; the Discord alert "
        "follows within about a minute."
    )


def panic_set(panic: bool) -> str:
    if panic:
        return "Panic turned on for your units on duty. Use /panic off when you are safe."
    return "Panic turned off for your units on duty."


LOOKUP_PLAN = "Lookups need Sonoran's Plus plan (or higher) for this community. Ask an admin."


def no_records(query: str) -> str:
    """`query` is already clean (the member's own input, checked)."""
    return f"No records found for {query}."


def lookup_limited(error: LookupLimited) -> str:
    wait = max(1, round(error.retry_after))
    if error.why == "paused":
        return (
            f"Lookups are paused for {max(1, round(wait / 60))} min: the CAD refused several lookups as malformed, "
            "and Sonoran blocks a community that keeps sending them. An admin can find the details in the bot's log."
        )
    if error.why == "hourly cap":
        return f"You have made as many lookups as one hour allows. Try again in {max(1, round(wait / 60))} min."
    return f"Slow down: you can look up again in {wait} s."


_SONORAN: list[tuple[type[cad.SonoranError], str]] = [
    (
        cad.BadCredentials,
        "The CAD rejected the API key or community ID. Ask an admin to check the bot's configuration.",
    ),
    (
        cad.PlanTooLow,
        "This needs a higher Sonoran plan (the API needs Standard; call lists, notes and closing calls need "
        "Plus). Ask an admin.",
    ),
    (cad.UnknownServer, "That CAD server ID is not configured in the CAD. Ask an admin to check the server IDs."),
    (
        cad.WrongApiUrl,
        "The bot is talking to the wrong CAD address. Ask an admin to check it (sonoran.api_url, or /setup cad).",
    ),
    (cad.CadUnavailable, "The CAD is not answering right now. Try again in a minute."),
    (
        cad.OutcomeUnknown,
        "The CAD did not answer in time, so it is unknown whether this went through. Check /calls before trying again.",
    ),
    (cad.BadReply, "The CAD sent an answer the bot does not understand."),
    (cad.NeedsApiV2, "This needs the CAD's API v2 (sonoran.api_version = 2). Ask an admin."),
    (
        cad.NotLinked,
        "Your Discord account is not linked to a CAD account. Link it in the CAD (your account settings, "
        "Discord), then try again.",
    ),
    (cad.NoUnitOnDuty, "You have no unit on duty in the CAD. Go on duty, then try again."),
]

_REFUSALS: list[tuple[type[Exception], str]] = [
    (app_commands.NoPrivateMessage, "Use this in the server: the dispatch commands do not work in direct messages."),
    (NotDispatcher, "Only dispatchers can do that (a dispatcher role, or Manage Server)."),
    (NotAllowedToCall, "Your roles do not allow filing 911 calls here. Ask an admin if that is wrong."),
    (
        BlockedFromCalling,
        "You may not file 911 calls here: one of your roles blocks it. Ask an admin if that is wrong.",
    ),
    (NotYourButtons, "These buttons belong to the member who ran the command."),
    (NotAChoice, "Choose a call from the list."),
    (LookupsOff, "Lookups are turned off on this server."),
    (
        NotAllowedToLookUp,
        "You may not look up records: that needs a lookup role (or, where the admins allow it, police, dispatch "
        "or supervisor rights on your linked CAD account). Ask an admin if that is wrong.",
    ),
    (ChannelNotAllowed, "Lookups are not allowed in this channel. Use one of the channels the admins chose."),
    (NotAStatus, "Choose a status from the list."),
    (NoCommunity, "This server is not set up with a Sonoran CAD community yet: an admin runs /setup cad."),
    (NotSetUp, "This server has no Sonoran community yet: run /setup cad first."),
    (KeyInUse, "This API key is already set up for another community: use that community's own key."),
    (
        KeyMismatch,
        "This community is already set up from another server with another API key: link it with the key it "
        "runs on (its own admins replace the key with /setup cad).",
    ),
    (app_commands.MissingPermissions, "You need the Manage Server permission (or a dispatcher role) for that."),
]


def user_message(error: BaseException) -> str:
    """The sentence a member sees for `error`: what happened and what to do, never a traceback."""
    if isinstance(error, (app_commands.CommandInvokeError, app_commands.TransformerError)) and error.__cause__:
        error = error.__cause__
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, cad.SonoranError):
        return sonoran_message(error)
    if isinstance(error, TooManyOpenCalls):
        return (
            f"You already have {error.open_calls} open 911 call(s) in the CAD. Wait until dispatch has "
            "handled them before filing another."
        )
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: you can file another call in {max(1, round(error.retry_after))} s."
    if isinstance(error, WaitBeforeAgain):
        return f"Slow down: you can do that again in {max(1, round(error.retry_after))} s."
    if isinstance(error, ServerNotConfigured):
        return f"The bot is not set up for CAD server {error.server_id}. Ask an admin, or leave the server option out."
    if isinstance(error, SetupProblem):
        return str(error)
    if isinstance(error, app_commands.TransformerError) and error.type is discord.AppCommandOptionType.channel:
        return "The bot cannot see that channel: give it View Channel there, then try again."
    if isinstance(error, app_commands.TransformerError):
        return f"That value is not valid: {clean(error.value, 100)}"
    if isinstance(error, BadLookup):
        return f"{error.problem} Nothing was looked up."
    if isinstance(error, LookupLimited):
        return lookup_limited(error)
    if isinstance(error, EmptyText):
        return f"The {error.what} is empty: nothing was added."
    if isinstance(error, TextTooLong):
        return f"The {error.what} is over {error.limit} characters: nothing was sent. Shorten it and try again."
    for kind, sentence in _REFUSALS:
        if isinstance(error, kind):
            return sentence
    return GENERIC


def sonoran_message(error: cad.SonoranError) -> str:
    if isinstance(error, cad.PlanTooLow) and error.operation == "lookup":
        return LOOKUP_PLAN
    if isinstance(error, cad.RequestRejected):  # the CAD's words may echo what a player typed
        return f"The CAD refused the request: {clean(error.detail, 300)}"
    if isinstance(error, cad.RateLimited):
        return f"The CAD is rate-limiting us, try again in {max(1, round(error.retry_after))} s."
    if isinstance(error, cad.NotFound):
        return (
            f"Call #{error.call_id} is not active." if error.call_id is not None else "The CAD has no such active call."
        )
    for kind, sentence in _SONORAN:
        if isinstance(error, kind):
            return sentence
    return "The CAD could not handle that request."
