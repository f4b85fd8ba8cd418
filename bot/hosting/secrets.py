"""The master keys, and the communities' API keys and push tokens sealed with them at rest.

The master keys (Fernet keys, newest first) come from `hosting.secret_keys`
(SONORAN_BOT_HOSTING__SECRET_KEYS) or the file `hosting.secret_keys_file`, never from the state.
Each sealed value carries its owner (the tenant's id) inside the ciphertext, checked on opening: a
value copied into another community's row is refused. A keyed fingerprint (HMAC under a key
derived from the newest master key) stands beside each API key, to show it and to find it set up
twice; `fingerprints` gives it under every master key, so a lookup still matches before
`keys rotate` has recomputed the stored ones.

No text of this module's errors, and no repr, ever holds a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import HostingSettings

__all__ = ["MasterKeyError", "SecretBox", "SecretMismatch", "master_keys"]

ENV_NAME = "SONORAN_BOT_HOSTING__SECRET_KEYS"
FINGERPRINT_INFO = b"sonoran-bot fingerprint"
FINGERPRINT_LENGTH = 16  # hex characters shown and stored: 64 bits, plenty to tell keys apart


class MasterKeyError(Exception):
    """The master keys are missing, malformed or not the ones the state was sealed with: one
    readable line for the admin, never holding a key."""


class SecretMismatch(MasterKeyError):
    """A sealed value opened fine, but belongs to another row: copied or tampered with."""


def master_keys(hosting: HostingSettings) -> list[str]:
    """The master keys, newest first: from `hosting.secret_keys` (comma-separated), or else from the
    file `hosting.secret_keys_file` (one a line; blank lines and `#` comments ignored)."""
    if hosting.secret_keys is not None:
        keys = [key.strip() for key in hosting.secret_keys.get_secret_value().split(",") if key.strip()]
        if keys:
            return keys
        raise MasterKeyError(f"hosting.secret_keys ({ENV_NAME}) is set but holds no key; {_HOW}")
    path = hosting.secret_keys_file
    if path is None:
        raise MasterKeyError(
            f"hosted mode needs a master key and none is set; {_HOW}, then set it as {ENV_NAME} "
            "(comma-separated, newest first) or put it in a file named by hosting.secret_keys_file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise MasterKeyError(
            f"hosting.secret_keys_file {path} cannot be read ({why}); check the path and that this user may read it"
        ) from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise MasterKeyError(f"hosting.secret_keys_file {path} holds no key; {_HOW} and put it on a line of its own")
    return keys


_HOW = "make one with `python -m bot keys generate`"


class SecretBox:
    """Seals and opens the secrets of the communities with the master keys (newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise MasterKeyError(f"hosted mode needs at least one master key; {_HOW}")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise MasterKeyError(
                    f"hosting.secret_keys: key {position} of {len(keys)} is not a Fernet key "
                    f"(44 url-safe base64 characters); {_HOW}"
                ) from None
        self._fernet = MultiFernet(fernets)
        # one HMAC key per master key, derived (never the master key itself), newest first
        self._fingerprint_keys = [_derive(key) for key in keys]

    def __repr__(self) -> str:
        count = len(self._fingerprint_keys)
        return f"SecretBox({count} master key{'' if count == 1 else 's'})"

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def seal(self, owner: str, secret: str) -> bytes:
        """`secret` encrypted under the newest master key, bound to `owner` (the tenant's id)."""
        return self._fernet.encrypt(json.dumps({"owner": owner, "secret": secret}).encode("utf-8"))

    def open(self, owner: str, token: bytes) -> str:
        """The secret sealed in `token`, if it was sealed for `owner` with one of the master keys."""
        try:
            plain = self._fernet.decrypt(bytes(token))
        except InvalidToken:
            raise MasterKeyError(
                f"the stored secret of community {owner} cannot be decrypted with the master keys: "
                "a wrong or missing key in hosting.secret_keys"
            ) from None
        try:
            sealed = json.loads(plain)
            found, secret = sealed["owner"], sealed["secret"]
        except (ValueError, KeyError, TypeError):
            raise SecretMismatch(f"the stored secret of community {owner} is not one this bot sealed") from None
        if not isinstance(secret, str) or not hmac.compare_digest(str(found).encode(), owner.encode()):
            raise SecretMismatch(
                f"the stored key of community {owner} belongs to another row; it was copied or tampered with"
            )
        return secret

    def rotate(self, token: bytes) -> bytes:
        """The same sealed value, re-encrypted under the newest master key."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise MasterKeyError(
                "a stored secret cannot be decrypted with the master keys: a wrong or missing key in "
                "hosting.secret_keys (keep the old key after the new one until `keys rotate` has run)"
            ) from None

    def fingerprint(self, secret: str) -> str:
        """A keyed hash of `secret` under the newest master key: shown, stored, never reversible."""
        return _fingerprint(self._fingerprint_keys[0], secret)

    def fingerprints(self, secret: str) -> set[str]:
        """Its fingerprint under every master key: a stored one made before a rotation still matches."""
        return {_fingerprint(key, secret) for key in self._fingerprint_keys}


def _derive(master_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=FINGERPRINT_INFO)
    return hkdf.derive(master_key.encode("ascii"))


def _fingerprint(key: bytes, secret: str) -> str:
    return hmac.new(key, secret.encode("utf-8"), hashlib.sha256).hexdigest()[:FINGERPRINT_LENGTH]
