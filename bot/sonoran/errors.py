"""One exception hierarchy for everything the CAD can do wrong.

The exceptions carry data (operation, status, wait, trace id, the ids involved); `str()` is a line
for logs. What a member is told is decided elsewhere (`bot.messages`), so this package knows
nothing of Discord. None of them ever holds the API key: every text that came from the wire
passes through `Redactor` before it lands in an exception.
"""

from __future__ import annotations

import re


class SonoranError(Exception):
    """Base class. `operation` names the request (e.g. `get_calls`); `status` is the HTTP status,
    when there was an answer; `trace_id` is Sonoran's, for a support ticket."""

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        status: int | None = None,
        trace_id: str | None = None,
        server_id: int | None = None,
        call_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.trace_id = trace_id
        self.server_id = server_id
        self.call_id = call_id

    def __str__(self) -> str:
        parts = [self.args[0] if self.args else type(self).__name__]
        if self.operation:
            parts.append(f"operation={self.operation}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.trace_id:
            parts.append(f"trace_id={self.trace_id}")
        return " ".join(parts)


class ConfigurationProblem(SonoranError):
    """Something only an admin can fix: credentials, plan, server ids."""


class BadCredentials(ConfigurationProblem):
    """The API key or community id was refused."""


class PlanTooLow(ConfigurationProblem):
    """The community's Sonoran plan does not include this operation."""


class WrongApiUrl(ConfigurationProblem):
    """v1 answered `Backend Service Reached`: the path does not exist (wrong URL or version)."""


class NeedsApiV2(ConfigurationProblem):
    """The operation exists on API v2 only (targeting members by Discord id)."""


class NotLinked(SonoranError):
    """No CAD account is linked to that Discord user (or the CAD has no such account)."""


class NoUnitOnDuty(SonoranError):
    """The member's CAD account has no unit on duty to attach or detach."""


class UnknownServer(ConfigurationProblem):
    """`server_id` is not a server of this community."""

    def __init__(
        self, server_id: int, *, operation: str = "", status: int | None = None, trace_id: str | None = None
    ) -> None:
        super().__init__(
            f"CAD server {server_id} does not exist",
            operation=operation,
            status=status,
            trace_id=trace_id,
            server_id=server_id,
        )


class NotFound(SonoranError):
    """No such call (`call_id`, when known)."""


class RateLimited(SonoranError):
    """Sonoran (or our own limiter, to spare the shared budget) says: not now, for `retry_after` s."""

    def __init__(self, retry_after: float, *, operation: str = "", status: int | None = None) -> None:
        retry_after = max(0.0, retry_after)
        super().__init__(f"rate limited, retry in {retry_after:.1f}s", operation=operation, status=status)
        self.retry_after = retry_after


class CadUnavailable(SonoranError):
    """Nothing (or a 5xx) came back; for a write, known not to have reached the CAD."""


class OutcomeUnknown(SonoranError):
    """A write was sent but no answer came back: it may or may not have happened."""


class BadReply(SonoranError):
    """The CAD answered something this client cannot read."""


class RequestRejected(SonoranError):
    """A 4xx the other classes do not cover; the CAD's own words are in `detail`."""

    def __init__(
        self, detail: str, *, operation: str = "", status: int | None = None, trace_id: str | None = None
    ) -> None:
        super().__init__(f"rejected: {detail}", operation=operation, status=status, trace_id=trace_id)
        self.detail = detail


_PLAN_TEXT = re.compile(r"IS NOT ENABLED FOR THIS COMMUNITY|\b(VERSION|PLAN|SUBSCRIPTION)\b.*\bREQUIRED\b", re.I)


def mentions_plan(text: str) -> bool:
    """`API IS NOT ENABLED FOR THIS COMMUNITY`, `VERSION PRO REQUIRED` and the like; not any 'required'."""
    return bool(_PLAN_TEXT.search(text))
