"""What `python -m bot check` says of a hosted deployment's secrets and state: the master keys load,
the registry opens, and every stored key decrypts with them."""

from __future__ import annotations

from ..config import Settings
from ..instance import LockUnavailable, in_use
from ..preflight import Check
from ..store import StateFileError
from .registry import SCHEMA_VERSION, Registry
from .secrets import ENV_NAME, MasterKeyError, SecretBox, master_keys

MAKE_ONE = f"make one with `python -m bot keys generate` and set it as {ENV_NAME} or in hosting.secret_keys_file"


async def hosting_checks(settings: Settings) -> list[Check]:
    hosting = settings.hosting
    try:
        keys = master_keys(hosting)
        box = SecretBox(keys)
    except MasterKeyError as error:
        return [Check("master keys", False, str(error), MAKE_ONE, fatal=True)]
    where = "hosting.secret_keys" if hosting.secret_keys is not None else f"{hosting.secret_keys_file}"
    checks = [Check("master keys", True, f"{len(keys)} key(s) from {where} load")]
    path = settings.state.path
    try:
        registry = await Registry.open_state(settings.state, box)
    except StateFileError as error:
        return [*checks, Check("state file", False, str(error), "see above", fatal=True)]
    try:
        try:
            running = in_use(path)
        except LockUnavailable as error:
            return [*checks, Check("state file", False, str(error), "see above", fatal=True)]
        beside = f"; in use by a running bot ({running.pid or 'pid unknown'})" if running is not None else ""
        opened = f"{registry.describe()}: opened and written (hosted schema {SCHEMA_VERSION}){beside}"
        checks.append(Check("state file", True, opened))
        try:
            tenants = await registry.tenants()
        except MasterKeyError as error:
            fix = (
                "set hosting.secret_keys to the keys the state was sealed with (newest first); after changing "
                "them, keep the old key after the new one until `python -m bot keys rotate` has run"
            )
            return [*checks, Check("community keys", False, str(error), fix, fatal=True)]
        limit = f" (hosting.max_communities {hosting.max_communities})"
        checks.append(Check("community keys", True, f"{len(tenants)} communities' keys decrypt{limit}"))
        return checks
    finally:
        await registry.close()
