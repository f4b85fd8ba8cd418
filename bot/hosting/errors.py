"""What /setup refuses, as the admin is told it (bot.messages maps each to its sentence)."""

from __future__ import annotations

from discord import app_commands


class SetupProblem(app_commands.CheckFailure):
    """A /setup value that cannot be used; its text is said to the admin as is."""


class NotSetUp(app_commands.CheckFailure):
    """A /setup subcommand other than `cad` in a guild that has not linked a community yet."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(f"guild {guild_id} has no community")
        self.guild_id = guild_id


class KeyMismatch(Exception):
    """The community is set up from another server with another key: a server joins it only with
    the key it runs on (its own admins replace the key with /setup cad)."""

    def __init__(self, community_id: str) -> None:
        super().__init__("this community is set up from another server with another API key")
        self.community_id = community_id


class KeyInUse(Exception):
    """The API key is already set up for another community (`community_id` says which, for the
    log; the member is told only that it is another's)."""

    def __init__(self, community_id: str) -> None:
        super().__init__("this API key is already set up for another community")
        self.community_id = community_id
