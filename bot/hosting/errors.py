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
