"""One exception hierarchy for everything the CAD can do wrong.

Callers act on the class; `str()` is a plain sentence for logs, `user_message` the sentence a
Discord member sees. None of them ever holds the API key: every text that came from the wire
passes through `Redactor` before it lands in an exception.
"""

from __future__ import annotations

import re


class SonoranError(Exception):
    """Base class. `operation` names the request (e.g. `get_calls`)."""

    user_message = "The CAD could not handle that request."

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        status: int | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.trace_id = trace_id

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
    user_message = "The CAD rejected the API key or community ID. Ask an admin to check the bot's configuration."


class PlanTooLow(ConfigurationProblem):
    user_message = (
        "This needs a higher Sonoran plan (the API needs Standard; call lists, notes and closing "
        "calls need Plus). Ask an admin."
    )


class UnknownServer(ConfigurationProblem):
    user_message = "That CAD server ID is not configured in the CAD. Ask an admin to check the server IDs."

    def __init__(self, server_id: int, **kwargs: object) -> None:
        super().__init__(f"CAD server {server_id} does not exist", **kwargs)  # type: ignore[arg-type]
        self.server_id = server_id


class NotFound(SonoranError):
    user_message = "The CAD has no such active call."

    def __init__(self, message: str, *, call_id: int | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.call_id = call_id
        if call_id is not None:
            self.user_message = f"Call #{call_id} is not active."


class RateLimited(SonoranError):
    """Sonoran (or our own limiter, to spare the shared budget) says: not now."""

    def __init__(self, retry_after: float, **kwargs: object) -> None:
        retry_after = max(0.0, retry_after)
        super().__init__(f"rate limited, retry in {retry_after:.1f}s", **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return f"The CAD is rate-limiting us, try again in {max(1, round(self.retry_after))} s."


class CadUnavailable(SonoranError):
    user_message = "The CAD is not answering right now. Try again in a minute."


class OutcomeUnknown(SonoranError):
    """A write was sent but no answer came back: it may or may not have happened."""

    user_message = (
        "The CAD did not answer in time, so it is unknown whether this went through. Check /calls before trying again."
    )


class BadReply(SonoranError):
    user_message = "The CAD sent an answer the bot does not understand."


class RequestRejected(SonoranError):
    """A 4xx the other classes do not cover; the CAD's own words are in `detail`."""

    def __init__(self, detail: str, **kwargs: object) -> None:
        super().__init__(f"rejected: {detail}", **kwargs)  # type: ignore[arg-type]
        self.detail = detail

    @property
    def user_message(self) -> str:  # type: ignore[override]
        return f"The CAD refused the request: {self.detail}"


class Redactor:
    """Removes a secret from text, in any letter case (the CAD upper-cases keys at times)."""

    def __init__(self, *secrets: str) -> None:
        words = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("[redacted]", text) if self._pattern else text

    def __repr__(self) -> str:
        return "Redactor(...)"


class WrongApiUrl(ConfigurationProblem):
    """v1 answered `Backend Service Reached`: the path does not exist (wrong URL or version)."""

    user_message = "The bot is talking to the wrong CAD address. Ask an admin to check sonoran.api_url."


_PLAN_TEXT = re.compile(r"IS NOT ENABLED FOR THIS COMMUNITY|\b(VERSION|PLAN|SUBSCRIPTION)\b.*\bREQUIRED\b", re.I)


def mentions_plan(text: str) -> bool:
    """`API IS NOT ENABLED FOR THIS COMMUNITY`, `VERSION PRO REQUIRED` and the like; not any 'required'."""
    return bool(_PLAN_TEXT.search(text))
