"""Keeps the API key out of every text that leaves the client: errors, logs, reprs."""

from __future__ import annotations

import re


class Redactor:
    """Removes a secret from text, in any letter case (the CAD upper-cases keys at times)."""

    def __init__(self, *secrets: str) -> None:
        words = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("[redacted]", text) if self._pattern else text

    def clip(self, text: str, limit: int) -> str:
        """The text redacted, then cut to `limit` characters: in that order, since a cut first can
        split the key so that its first part no longer matches and goes out as it is."""
        return self(text)[:limit]

    def __repr__(self) -> str:
        return "Redactor(...)"
