"""The HTTP layer both API versions share: rate limits, timeouts, 429s, retries, fault mapping.

What differs between v1 and v2 (paths, bodies, how an error reads) stays in v1.py and v2.py,
which hand this module a `Request` and a function that turns a non-success `Reply` into an error.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict

from ..backoff import Backoff
from ..version import PACKAGE, version
from .errors import (
    BadReply,
    CadUnavailable,
    OutcomeUnknown,
    RateLimited,
    SonoranError,
)
from .numbers import loads
from .ratelimit import Limiter, LimiterFactory, SlidingWindowLimiter, retry_after_seconds
from .redaction import Redactor

log = logging.getLogger(__name__)

USER_AGENT = f"{PACKAGE}/{version().split()[0]} (aiohttp)"
# Every request names one of these; each is its own rate-limit bucket and needs a budget
# (`rate_limits` in the configuration). Adding an operation starts here.
OPERATIONS = (
    "get_calls",
    "call_911",
    "remove_911",
    "add_call_note",
    "close_call",
    "get_version",
    "get_servers",
    "attach_unit",
    "detach_unit",
    "get_account",
    "get_active_units",
    "unit_status",
    "unit_panic",
    "lookup",
)


@dataclass(frozen=True)
class Spend:
    """How much of the rate budget one request may use (who may spend what is decided above)."""

    reserve: int = 0  # slots of the operation's window this request must leave to others
    retry: bool = True  # a read may be sent again after a fault or a 429; False: one request, at most
    max_wait: float | None = None  # the longest it waits for a rate-limit slot (None: the client's default)


ANY_SPEND = Spend()


@dataclass(frozen=True)
class Request:
    operation: str  # also the rate-limit bucket: get_calls, call_911, ...
    method: str
    path: str
    json: Any = field(default=None, repr=False)  # a v1 body holds the API key
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # v2: the bearer key
    read: bool = False  # reads may be retried; writes never are
    spend: Spend = ANY_SPEND
    server_id: int | None = None
    call_id: int | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = field(repr=False)
    headers: Mapping[str, str]
    operation: str
    redact: Redactor = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @functools.cached_property
    def text(self) -> str:
        """The body as text, with the API key taken out (decoded only when someone reads it)."""
        return self.redact(self.body.decode(errors="replace"))

    def json(self) -> Any:
        """The body as JSON, whatever the Content-Type says (v1 often says text/plain)."""
        if not self.body.strip():
            return None
        try:
            return loads(self.body)  # an integer too long for Python costs its own field only
        except ValueError:
            raise BadReply(
                f"expected JSON, got {self.text[:80]!r}", operation=self.operation, status=self.status
            ) from None


DETAIL_LIMIT = 300  # the most of the CAD's own words an error keeps (redacted first: Redactor.clip)

ErrorMapper = Callable[[Request, Reply], Awaitable[SonoranError]]


class HttpCore:
    """Sends `Request`s on one shared session, within the per-operation budgets."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        rate_limits: Mapping[str, int],
        timeout: float,
        redactor: Redactor,
        max_wait: float = 10.0,
        read_retries: int = 2,
        retry_backoff: float = 0.5,
        rate_limit_retries: int = 2,
        clock: Callable[[], float] = time.monotonic,
        limiter_factory: LimiterFactory | None = None,
    ) -> None:
        """`limiter_factory(operation, limit)`: each operation's budget; by default a
        `SlidingWindowLimiter` of this process on `clock` (a cluster passes one its processes share)."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.redact = redactor
        self.max_wait = max_wait
        self.read_retries = read_retries
        self.retry_backoff = retry_backoff
        self.rate_limit_retries = rate_limit_retries
        missing = [op for op in OPERATIONS if op not in rate_limits]
        if missing:
            raise ValueError(f"no rate limit for {', '.join(missing)}: every operation needs its budget")
        if limiter_factory is None:

            def limiter_factory(operation: str, limit: int) -> Limiter:
                return SlidingWindowLimiter(limit, clock=clock)

        self.limiters = {op: limiter_factory(op, limit) for op, limit in rate_limits.items()}

    def __repr__(self) -> str:
        return f"HttpCore(base_url={self.base_url!r})"

    def limiter(self, operation: str) -> Limiter:
        try:
            return self.limiters[operation]
        except KeyError:
            raise LookupError(f"{operation!r} is not in OPERATIONS (bot/sonoran/transport.py)") from None

    async def send(self, request: Request, on_error: ErrorMapper) -> Reply:
        faults = Backoff(first=self.retry_backoff)
        limited = 0
        read_retries = self.read_retries if request.spend.retry else 0
        rate_limit_retries = self.rate_limit_retries if request.spend.retry else 0
        while True:
            try:
                reply = await self._send_once(request)
            except CadUnavailable:
                if not request.read or faults.failures >= read_retries:
                    raise
                await asyncio.sleep(faults.failed())
                continue
            if reply.ok:
                return reply
            if reply.status == 429:
                wait = retry_after_seconds(reply.headers)
                if wait is None:
                    wait = min(self.max_wait, 2.0**limited)
                self.limiter(request.operation).block_for(wait)
                if limited >= rate_limit_retries or wait > self.max_wait:
                    raise RateLimited(wait, operation=request.operation, status=429)
                limited += 1
                log.info("Sonoran rate limit on %s; retrying in %.1fs", request.operation, wait)
                continue  # the limiter sleeps for us
            if reply.status >= 500:
                error: SonoranError = CadUnavailable(
                    f"CAD answered HTTP {reply.status}",
                    operation=request.operation,
                    status=reply.status,
                    trace_id=trace_id_of(reply),
                )
                if request.read and faults.failures < read_retries:
                    await asyncio.sleep(faults.failed())
                    continue
                raise error
            raise await on_error(request, reply)

    async def _send_once(self, request: Request) -> Reply:
        max_wait = self.max_wait if request.spend.max_wait is None else request.spend.max_wait
        wait = await self.limiter(request.operation).acquire(max_wait, request.spend.reserve)
        if wait:
            raise RateLimited(wait, operation=request.operation)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **request.headers}
        try:
            async with self.session.request(
                request.method,
                self.base_url + request.path,
                json=request.json,
                params=request.params,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,  # the CAD answers where it is asked: a redirect is no answer of its
            ) as response:
                body = await response.read()
                # header names stay case-insensitive: gateways send `ratelimit-reset` and the like
                return Reply(response.status, body, CIMultiDict(response.headers), request.operation, self.redact)
        except aiohttp.ClientConnectorError as exc:
            # Never connected: nothing reached the CAD, so even a write is known not to have happened.
            raise CadUnavailable(
                f"cannot connect to the CAD ({type(exc).__name__})", operation=request.operation
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
            if not request.read:
                raise OutcomeUnknown(
                    f"{request.operation} {what} after it was sent", operation=request.operation
                ) from None
            raise CadUnavailable(f"{request.operation} {what}", operation=request.operation) from None


def trace_id_of(reply: Reply) -> str | None:
    for name in ("X-Trace-Id", "X-Kong-Request-Id"):
        if reply.headers.get(name):
            return reply.headers[name]
    try:
        body = json.loads(reply.text) if reply.text.strip().startswith("{") else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("traceId", "request_id"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None
