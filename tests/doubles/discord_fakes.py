"""Discord, faked at the HTTP level: raw INTERACTION_CREATE payloads go through discord.py's own
parser and command tree; every request discord.py makes is answered here by aioresponses.

`FakeDiscord` also keeps the channel messages the bot posts (honouring `nonce` de-duplication
as Discord does with `enforce_nonce`: the first message comes back, unchanged) and can be told to
fail the next channel requests. Like Discord, it refuses with a 400 and Discord's error body any
message, edit or interaction reply over a documented limit (`tests/doubles/discord_limits.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import yarl
from aioresponses import CallbackResult, aioresponses
from discord.gateway import DiscordWebSocket

from bot.sandbox.terminal import message_payload as sandbox_message

from .discord_limits import error_body, interaction_errors, message_errors

API = "https://discord.com/api/v10"
APP_ID = "111111111111111111"
BOT_ID = "222222222222222222"
GUILD_ID = "333333333333333333"
CHANNEL_ID = "444444444444444444"
USER_ID = "555555555555555555"
OWNER_ID = "666666666666666666"
DISPATCH_ROLE = "777777777777777777"
CALLER_ROLE = "888888888888888888"
MANAGE_GUILD = 1 << 5
EPHEMERAL = 64

_ids = itertools.count(900_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_ids))


def user_payload(user_id: str = USER_ID, name: str = "tester", global_name: str | None = None) -> dict[str, Any]:
    return {"id": user_id, "username": name, "discriminator": "0", "avatar": None, "global_name": global_name}


def message_payload(
    channel_id: str, content: str = "", embeds: list[Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return sandbox_message(snowflake(), channel_id, user_payload(BOT_ID, "dispatch-bot"), content, embeds, **extra)


@dataclass
class ChannelFault:
    status: int
    code: int
    message: str
    method: str = "POST"  # POST = new message, PATCH = edit
    retry_after: float | None = None  # for 429s, as Discord sends it
    after_create: bool = False  # the message is created, and then the reply is this error


@dataclass
class FakeDiscord:
    mock: aioresponses
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # message id -> payload
    nonces: dict[str, str] = field(default_factory=dict)  # nonce -> message id
    faults: deque[ChannelFault] = field(default_factory=deque)
    channel_posts: int = 0
    channel_edits: int = 0
    valid_token: str | None = None  # when set, any other token gets Discord's 401
    refused: list[dict[str, Any]] = field(default_factory=list)  # the 400 bodies sent back, for asserting
    # a message or edit whose body holds this text is refused with a 400, as Discord refuses what
    # it will not take for reasons of its own (a filtered word, a rule the limits do not cover)
    poison: str | None = None
    sync_fault: ChannelFault | None = None  # the answer to the next command sync
    on_post: Callable[[dict[str, Any]], None] | None = None  # told of each channel message as it is made
    # interaction token -> the message its response made (what GET .../messages/@original answers)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    # every message made in answer to an interaction (responses and followups), in order, as shown
    interaction_messages: list[dict[str, Any]] = field(default_factory=list)
    # channel id -> the answer to every post and edit there, until removed (a channel that fails)
    channel_faults: dict[str, ChannelFault] = field(default_factory=dict)
    # channel id -> writes there wait until the event is set (a channel where Discord is slow)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    # every channel write as it reached Discord, in order: (method, channel id, message id or "")
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    # Discord's per-channel bucket for message writes, (writes, per seconds), e.g. (5, 5.0): answered
    # with its rate-limit headers, and with a 429 past it. None: no limit (most tests)
    channel_bucket: tuple[int, float] | None = None
    _bucket_stamps: dict[str, deque[float]] = field(default_factory=dict)

    def install(self) -> None:
        m = self.mock
        m.get(f"{API}/users/@me", callback=self._me, repeat=True)
        m.get(f"{API}/oauth2/applications/@me", callback=self._application, repeat=True)
        m.post(
            re.compile(rf"^{re.escape(API)}/interactions/\d+/[^/]+/callback(\?.*)?$"),
            callback=self._callback,
            repeat=True,
        )
        m.post(re.compile(rf"^{re.escape(API)}/webhooks/\d+/[^/?]+(\?.*)?$"), callback=self._followup, repeat=True)
        m.patch(
            re.compile(rf"^{re.escape(API)}/webhooks/\d+/[^/]+/messages/[^/?]+(\?.*)?$"),
            callback=self._followup,
            repeat=True,
        )
        m.get(
            re.compile(rf"^{re.escape(API)}/webhooks/\d+/[^/]+/messages/@original(\?.*)?$"),
            callback=self._original,
            repeat=True,
        )
        m.post(re.compile(rf"^{re.escape(API)}/channels/\d+/messages(\?.*)?$"), callback=self.post_message, repeat=True)
        m.patch(
            re.compile(rf"^{re.escape(API)}/channels/\d+/messages/\d+(\?.*)?$"), callback=self.edit_message, repeat=True
        )
        m.delete(
            re.compile(rf"^{re.escape(API)}/channels/\d+/messages/\d+(\?.*)?$"), callback=self._delete, repeat=True
        )
        m.put(
            re.compile(rf"^{re.escape(API)}/applications/\d+(/guilds/\d+)?/commands$"), callback=self._sync, repeat=True
        )

    def serve_gateway(self, url: str) -> None:
        """Points discord.py at a local gateway: it connects first to DEFAULT_GATEWAY, not the URL
        that /gateway/bot names, so that class attribute is redirected (and restored by `close`)."""
        self._saved_gateway = DiscordWebSocket.DEFAULT_GATEWAY
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        self.mock.get(
            f"{API}/gateway/bot",
            repeat=True,
            payload={
                "url": url,
                "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
            },
        )

    def close(self) -> None:
        saved = getattr(self, "_saved_gateway", None)
        if saved is not None:
            DiscordWebSocket.DEFAULT_GATEWAY = saved

    # --- handlers --------------------------------------------------------------------------------
    def _application(self, url: Any, **kw: Any) -> CallbackResult:
        return CallbackResult(
            payload={
                "id": APP_ID,
                "name": "dispatch",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": "x",
                "flags": 0,
                "owner": user_payload(OWNER_ID, "owner"),
            }
        )

    def _me(self, url: Any, **kw: Any) -> CallbackResult:
        token = (kw.get("headers") or {}).get("Authorization", "")
        if self.valid_token is not None and token != f"Bot {self.valid_token}":
            return CallbackResult(status=401, payload={"code": 0, "message": "401: Unauthorized"})
        return CallbackResult(payload={**user_payload(BOT_ID, "dispatch-bot"), "bot": True, "flags": 0})

    def _refuse(self, errors: dict[str, Any], raw: str = "") -> CallbackResult | None:
        if self.poison and self.poison in raw:
            errors = {"embeds": {"_errors": [{"code": "CONTENT_BLOCKED", "message": "Content is not allowed"}]}}
        if not errors:
            return None
        status, body = error_body(errors)
        self.refused.append(body)
        return CallbackResult(status=status, payload=body)

    def _callback(self, url: Any, **kw: Any) -> CallbackResult:
        body = json.loads(kw["data"])
        refused = self._refuse(interaction_errors(body))
        if refused:
            return refused
        data = body.get("data") or {}
        interaction = {
            "id": url.path.split("/")[-3],
            "type": 2,
            "response_message_ephemeral": bool(data.get("flags", 0) & EPHEMERAL),
        }
        out: dict[str, Any] = {"interaction": interaction}
        if body["type"] in (4, 7):
            flags = EPHEMERAL if data.get("flags", 0) & EPHEMERAL else 0
            msg = message_payload(CHANNEL_ID, data.get("content") or "", data.get("embeds"), flags=flags)
            if body["type"] == 4:  # a message made in answer to an interaction names it, as Discord's do
                interaction_id = url.path.split("/")[-3]
                msg["interaction_metadata"] = {
                    "id": interaction_id,
                    "type": INTERACTION_TYPES.get(interaction_id, 2),
                    "user": user_payload(),
                    "authorizing_integration_owners": {"0": GUILD_ID},
                }
            msg["components"] = data.get("components", [])
            interaction["response_message_id"] = msg["id"]
            out["resource"] = {"type": body["type"], "message": msg}
            self.responses[url.path.split("/")[-2]] = msg
            self.interaction_messages.append(msg)
        return CallbackResult(payload=out)

    def _followup(self, url: Any, **kw: Any) -> CallbackResult:
        body = json.loads(kw["data"]) if kw.get("data") else {}
        refused = self._refuse(message_errors(body, edit="/messages/" in str(url)))
        if refused:
            return refused
        msg = message_payload(CHANNEL_ID, body.get("content") or "", body.get("embeds"), flags=body.get("flags", 0))
        msg["components"] = body.get("components", [])
        if "/messages/" not in str(url):
            self.interaction_messages.append(msg)
        return CallbackResult(payload=msg)

    def _original(self, url: Any, **kw: Any) -> CallbackResult:
        token = url.path.split("/")[-3]
        return CallbackResult(payload=self.responses.get(token) or message_payload(CHANNEL_ID, ""))

    def _fault(self, method: str, *, created: bool = False) -> CallbackResult | None:
        """The next scripted fault for `method`: before the message is made, or (`created`) after."""
        if self.faults and self.faults[0].method == method and self.faults[0].after_create == created:
            fault = self.faults.popleft()
            body: dict[str, Any] = {"code": fault.code, "message": fault.message}
            headers = {}
            if fault.retry_after is not None:
                body |= {"retry_after": fault.retry_after, "global": False}
                # without `Via`, discord.py takes a 429 for a Cloudflare ban and gives up
                headers = {"Retry-After": str(fault.retry_after), "X-RateLimit-Scope": "user", "Via": "1.1 google"}
            return CallbackResult(status=fault.status, payload=body, headers=headers)
        return None

    async def post_message(self, url: Any, **kw: Any) -> CallbackResult:
        """POST /channels/{id}/messages, after the channel's gate and with its standing fault."""
        return await self._channel_write(url, self._post, **kw)

    async def edit_message(self, url: Any, **kw: Any) -> CallbackResult:
        """PATCH /channels/{id}/messages/{id}, after the channel's gate and with its standing fault."""
        return await self._channel_write(url, self._edit, **kw)

    async def _channel_write(self, url: Any, handler: Callable[..., CallbackResult], **kw: Any) -> CallbackResult:
        parts = url.path.split("/")
        channel, message = parts[parts.index("channels") + 1], parts[-1] if parts[-1] != "messages" else ""
        gate = self.gates.get(channel)
        if gate is not None:
            await gate.wait()
        limited = self._over_bucket(channel)
        if limited is not None:
            return limited
        self.writes.append(("PATCH" if message else "POST", channel, message))
        standing = self.channel_faults.get(channel)
        if standing is not None:
            self.faults.appendleft(replace(standing, method="PATCH" if message else "POST", after_create=False))
        result = handler(url, **kw)
        if self.channel_bucket is not None:
            result.headers = {**(result.headers or {}), **self._bucket_headers(channel)}
        return result

    def _over_bucket(self, channel: str) -> CallbackResult | None:
        if self.channel_bucket is None:
            return None
        limit, period = self.channel_bucket
        now = asyncio.get_running_loop().time()
        stamps = self._bucket_stamps.setdefault(channel, deque())
        while stamps and now - stamps[0] >= period:
            stamps.popleft()
        if len(stamps) < limit:
            stamps.append(now)
            return None
        wait = round(stamps[0] + period - now, 3)
        body = {"message": "You are being rate limited.", "retry_after": wait, "global": False}
        headers = {"Retry-After": str(wait), "X-RateLimit-Scope": "user", "Via": "1.1 google"}
        return CallbackResult(status=429, payload=body, headers={**headers, **self._bucket_headers(channel)})

    def _bucket_headers(self, channel: str) -> dict[str, str]:
        assert self.channel_bucket is not None
        limit, period = self.channel_bucket
        stamps = self._bucket_stamps.get(channel) or deque()
        reset = (stamps[0] + period - asyncio.get_running_loop().time()) if stamps else period
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - len(stamps))),
            "X-RateLimit-Reset-After": f"{max(0.0, reset):.3f}",
            "X-RateLimit-Bucket": f"channel-{channel}",
        }

    def _post(self, url: Any, **kw: Any) -> CallbackResult:
        fault = self._fault("POST")
        if fault:
            return fault
        body = json.loads(kw["data"])
        refused = self._refuse(message_errors(body), kw["data"])
        if refused:
            return refused
        nonce = body.get("nonce")
        if nonce and body.get("enforce_nonce") and nonce in self.nonces:
            # Discord's de-duplication: the message it already made, as it is, whatever this body says
            return CallbackResult(payload=self.messages[self.nonces[nonce]])
        channel_id = url.path.split("/")[-2]
        msg = message_payload(channel_id, body.get("content") or "", body.get("embeds"), nonce=nonce)
        msg["components"] = body.get("components", [])
        self.messages[msg["id"]] = msg
        if nonce:
            self.nonces[str(nonce)] = msg["id"]
        self.channel_posts += 1
        if self.on_post is not None:
            self.on_post(msg)
        return self._fault("POST", created=True) or CallbackResult(payload=msg)

    def _edit(self, url: Any, **kw: Any) -> CallbackResult:
        fault = self._fault("PATCH")
        if fault:
            return fault
        message_id = url.path.split("/")[-1]
        if message_id not in self.messages:
            return CallbackResult(status=404, payload={"code": 10008, "message": "Unknown Message"})
        body = json.loads(kw["data"])
        refused = self._refuse(message_errors(body, edit=True), kw["data"])
        if refused:
            return refused
        self.messages[message_id].update({k: v for k, v in body.items() if k in ("content", "embeds", "components")})
        self.channel_edits += 1
        return CallbackResult(payload=self.messages[message_id])

    def _delete(self, url: Any, **kw: Any) -> CallbackResult:
        message_id = url.path.split("/")[-1]
        if self.messages.pop(message_id, None) is None:
            return CallbackResult(status=404, payload={"code": 10008, "message": "Unknown Message"})
        self.writes.append(("DELETE", url.path.split("/")[-3], message_id))
        return CallbackResult(status=204, body="", content_type="text/plain")

    def _sync(self, url: Any, **kw: Any) -> CallbackResult:
        if self.sync_fault is not None:
            fault, self.sync_fault = self.sync_fault, None
            return CallbackResult(status=fault.status, payload={"code": fault.code, "message": fault.message})
        commands = json.loads(kw["data"])
        registered = [
            {**c, "id": snowflake(), "application_id": APP_ID, "version": "1", "type": c.get("type", 1)}
            for c in commands
        ]
        return CallbackResult(body=json.dumps(registered), content_type="application/json")

    # --- asserting -------------------------------------------------------------------------------
    def sent(self, method: str, path_regex: str) -> list[Any]:
        out: list[Any] = []
        for (meth, url), calls in self.mock.requests.items():
            if meth == method and re.search(path_regex, url.path):
                for call in calls:
                    if call.kwargs.get("json") is not None:
                        out.append(call.kwargs["json"])
                    elif call.kwargs.get("data"):
                        out.append(json.loads(call.kwargs["data"]))
                    else:
                        out.append(None)
        return out

    def last_interaction_message(self) -> dict[str, Any]:
        """The latest message made in answer to an interaction, as Discord shows it (id, buttons)."""
        return self.interaction_messages[-1]

    def replies(self) -> list[dict[str, Any]]:
        """Everything the bot said back to interactions, in the order sent: callbacks and followups."""
        out: list[dict[str, Any]] = []
        for (meth, url), calls in self.mock.requests.items():
            if meth in ("POST", "PATCH") and re.search(r"/(interactions|webhooks)/", url.path):
                out.extend(json.loads(c.kwargs["data"]) for c in calls if c.kwargs.get("data"))
        return out

    def channel_messages(self, channel_id: str | int) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)]

    def reset_requests(self) -> None:
        self.mock.requests.clear()

    def forget_history(self) -> None:
        """For long benchmark runs: aioresponses keeps every response it built and its patch
        records every call's arguments; drop both so they do not count as the bot's memory."""
        self.reset_requests()
        for response in self.mock._responses:
            response.close()
        self.mock._responses.clear()
        aiohttp.ClientSession._request.mock.reset_mock()  # type: ignore[attr-defined]
        self.messages.clear()
        self.nonces.clear()


# --- interaction payloads ----------------------------------------------------------------------


def _member(roles: list[str], permissions: int, user_id: str, nick: str | None) -> dict[str, Any]:
    return {
        "user": user_payload(user_id, f"user{user_id[-3:]}"),
        "roles": roles,
        "flags": 0,
        "nick": nick,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "permissions": str(permissions),
    }


INTERACTION_TYPES: dict[str, int] = {}  # every interaction payload made here: id -> type


def _base(
    kind: int,
    data: dict[str, Any],
    *,
    dm: bool,
    roles: list[str] | None,
    permissions: int,
    user_id: str,
    nick: str | None,
) -> dict[str, Any]:
    interaction_id = snowflake()
    INTERACTION_TYPES[interaction_id] = kind
    payload: dict[str, Any] = {
        "id": interaction_id,
        "application_id": APP_ID,
        "type": kind,
        "token": f"tok-{interaction_id}",
        "version": 1,
        "attachment_size_limit": 8388608,
        "locale": "en-US",
        "app_permissions": "412317240384",
        "channel_id": CHANNEL_ID,
        "data": data,
    }
    if dm:
        payload["user"] = user_payload(user_id)
        payload["channel"] = {"id": CHANNEL_ID, "type": 1}
        payload["context"] = 1
    else:
        payload.update(
            {
                "guild_id": GUILD_ID,
                "guild_locale": "en-US",
                "context": 0,
                "channel": {
                    "id": CHANNEL_ID,
                    "type": 0,
                    "guild_id": GUILD_ID,
                    "name": "dispatch",
                    "position": 0,
                    "permission_overwrites": [],
                },
                "member": _member(roles or [], permissions, user_id, nick),
            }
        )
    return payload


OPTION_TYPES = {str: 3, int: 4, bool: 5}


def slash(
    name: str,
    options: dict[str, Any] | None = None,
    *,
    dm: bool = False,
    roles: list[str] | None = None,
    permissions: int = 0,
    user_id: str = USER_ID,
    nick: str | None = "Officer Tester",
) -> dict[str, Any]:
    opts = [{"name": k, "type": OPTION_TYPES[type(v)], "value": v} for k, v in (options or {}).items()]
    return _base(
        2,
        {"id": snowflake(), "name": name, "type": 1, "options": opts},
        dm=dm,
        roles=roles,
        permissions=permissions,
        user_id=user_id,
        nick=nick,
    )


def autocomplete(
    name: str, focused: str, value: str, others: dict[str, Any] | None = None, *, permissions: int = MANAGE_GUILD
) -> dict[str, Any]:
    opts = [{"name": k, "type": OPTION_TYPES[type(v)], "value": v} for k, v in (others or {}).items()]
    opts.append({"name": focused, "type": 4, "value": value, "focused": True})
    return _base(
        4,
        {"id": snowflake(), "name": name, "type": 1, "options": opts},
        dm=False,
        roles=[],
        permissions=permissions,
        user_id=USER_ID,
        nick=None,
    )


def button(
    custom_id: str,
    message_id: str,
    *,
    user_id: str = USER_ID,
    permissions: int = MANAGE_GUILD,
    message: dict[str, Any] | None = None,
    roles: list[str] | None = None,
) -> dict[str, Any]:
    """A click on a button of `message` (default: an ephemeral reply with that id)."""
    return _component({"custom_id": custom_id, "component_type": 2}, message_id, user_id, permissions, message, roles)


def select(
    custom_id: str,
    values: list[str],
    message_id: str,
    *,
    user_id: str = USER_ID,
    permissions: int = MANAGE_GUILD,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A choice in a string select menu of `message`."""
    data = {"custom_id": custom_id, "component_type": 3, "values": values}
    return _component(data, message_id, user_id, permissions, message, None)


def modal_submit(
    custom_id: str, values: dict[str, str], *, user_id: str = USER_ID, permissions: int = MANAGE_GUILD
) -> dict[str, Any]:
    """A submitted modal: `values` maps each text input's custom_id to what was typed."""
    rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in values.items()]
    return _base(
        5,
        {"custom_id": custom_id, "components": rows},
        dm=False,
        roles=[],
        permissions=permissions,
        user_id=user_id,
        nick=None,
    )


def _component(
    data: dict[str, Any],
    message_id: str,
    user_id: str,
    permissions: int,
    message: dict[str, Any] | None,
    roles: list[str] | None,
) -> dict[str, Any]:
    payload = _base(3, data, dm=False, roles=roles or [], permissions=permissions, user_id=user_id, nick=None)
    payload["message"] = message or (message_payload(CHANNEL_ID, "", flags=EPHEMERAL) | {"id": message_id})
    return payload


def button_id(message: dict[str, Any], label: str) -> str:
    """The custom_id of the button labelled `label` on `message`."""
    (custom_id,) = [
        item["custom_id"]
        for row in message.get("components") or []
        for item in row["components"]
        if item.get("label") == label
    ]
    return str(custom_id)


async def press(bot: Any, message: dict[str, Any], label: str, **member: Any) -> None:
    """A click on the button labelled `label` of `message` (a question, a page), as the member sees it."""
    await dispatch_interaction(bot, button(button_id(message, label), message["id"], message=message, **member))


async def dispatch_interaction(bot: Any, *payloads: dict[str, Any]) -> None:
    """Feeds payloads to discord.py as the gateway would (several: back to back, before any of them
    is handled, as when two members act at once), and waits for what they scheduled."""

    def ours(task: asyncio.Task[Any]) -> bool:
        name = task.get_name()
        return name == "CommandTree-invoker" or name.startswith(
            ("discord-ui-view-dispatch-", "discord-ui-dynamic-item-", "discord-ui-modal-dispatch-")
        )

    before = {t for t in asyncio.all_tasks() if ours(t)}
    for payload in payloads:
        bot._connection.parse_interaction_create(payload)
    new = [t for t in asyncio.all_tasks() if ours(t) and t not in before]
    assert len(new) >= len(payloads), "nothing was scheduled: unknown command or custom_id?"
    await asyncio.gather(*new)
