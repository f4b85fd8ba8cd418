"""/setup (hosted mode only): a community set up inside Discord. Manage Server only, every answer
ephemeral. The cog declares the commands; what they change is the host's (`bot.hosting.host`),
which stores first and then puts the community to work on it.

Channels and roles come from Discord's own options (never typed ids), are checked to be this
server's, and the bot's permissions in each channel are checked before anything is stored. Every
change is audited (who, what, when; never the key): a line in the registry, shown by /setup show,
and a record in the server's audit channel if it has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands
from pydantic import ValidationError

from bot.aliases import NO_PINGS, Interaction
from bot.audit import DONE, AuditRecord
from bot.config import AlertSettings, BoardSettings, FeedSettings
from bot.core import DispatchBot
from bot.delivery.faults import missing_feed_permissions
from bot.hosting.edits import put, take
from bot.hosting.errors import KeyInUse, KeyMismatch, SetupProblem
from bot.hosting.host import Host
from bot.hosting.models import CommunityOptions, GuildConfig
from bot.hosting.netguard import url_problem
from bot.hosting.render import CALLS_CHOICES, calls_name, cooldowns_text, show_text
from bot.hosting.verify import SONORAN_API_URL, verify_cad
from bot.intake.listener import push_url
from bot.messages import user_message
from bot.preflight import ping_role_check
from bot.sonoran import SonoranError
from bot.tree import log_error, reply_ephemeral

log = logging.getLogger(__name__)

SERVER_IDS = app_commands.Range[int, 1, 2**31 - 1]
COOLDOWN = app_commands.Range[float, 0, 3600]


def _problem_text(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    message = str(first.get("ctx", {}).get("error") or first["msg"])
    return message.removeprefix("Value error, ")


class CadForm(discord.ui.Modal, title="Link a Sonoran CAD community"):
    community_id: discord.ui.TextInput[CadForm] = discord.ui.TextInput(
        label="Community ID",
        custom_id="setup:community_id",
        max_length=64,
        placeholder="Sonoran CAD > Admin > Advanced > Community ID",
    )
    api_key: discord.ui.TextInput[CadForm] = discord.ui.TextInput(
        label="API key",
        custom_id="setup:api_key",
        max_length=200,
        placeholder="Sonoran CAD > Admin > Advanced > API Key",
    )
    api_url: discord.ui.TextInput[CadForm] = discord.ui.TextInput(
        label="API URL",
        custom_id="setup:api_url",
        required=False,
        max_length=200,
        placeholder=f"optional; {SONORAN_API_URL} by default",
    )

    def __init__(self, cog: Setup) -> None:
        super().__init__(timeout=600, custom_id="setup:cad")
        self.cog = cog

    async def on_submit(self, interaction: Interaction) -> None:  # type: ignore[override]
        await self.cog.link(
            interaction, self.community_id.value.strip(), self.api_key.value.strip(), self.api_url.value.strip()
        )

    async def on_error(self, interaction: Interaction, error: Exception) -> None:  # type: ignore[override]
        await self.cog.report(interaction, error)


class ConfirmRemoval(discord.ui.View):
    def __init__(self, cog: Setup, member_id: int) -> None:
        super().__init__(timeout=60)
        self.cog = cog
        self.member_id = member_id

    async def interaction_check(self, interaction: Interaction) -> bool:  # type: ignore[override]
        if interaction.user.id != self.member_id:
            await reply_ephemeral(interaction, "This question belongs to the admin who ran /setup remove.")
            return False
        if not interaction.permissions.manage_guild:  # lost since the question was asked
            await reply_ephemeral(interaction, "You need the Manage Server permission for that.")
            return False
        return True

    @discord.ui.button(label="Remove", style=discord.ButtonStyle.danger)
    async def remove(self, interaction: Interaction, button: discord.ui.Button[ConfirmRemoval]) -> None:
        self.stop()
        await self.cog.remove(interaction)

    @discord.ui.button(label="Keep", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: Interaction, button: discord.ui.Button[ConfirmRemoval]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was removed.", view=None)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Setup(commands.GroupCog, group_name="setup", group_description="Set this server up with a Sonoran CAD community"):
    def __init__(self, bot: DispatchBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def host(self) -> Host:
        if self.bot.host is None:
            raise RuntimeError("/setup needs a bot that serves in hosted mode")
        return self.bot.host

    async def interaction_check(self, interaction: Interaction) -> bool:  # type: ignore[override]
        # Discord hides /setup from members without Manage Server, but an admin may override
        # that per role; the rule is the bot's own
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def report(self, interaction: Interaction, error: BaseException) -> None:
        log_error(error, "/setup cad")
        await reply_ephemeral(interaction, user_message(error))

    # --- the CAD ------------------------------------------------------------------------------------
    @app_commands.command(name="cad", description="Link this server to a Sonoran CAD community (opens a form)")
    async def cad(self, interaction: Interaction) -> None:
        await interaction.response.send_modal(CadForm(self))

    async def link(self, interaction: Interaction, community_id: str, api_key: str, api_url: str) -> None:
        assert interaction.guild_id is not None
        if not interaction.permissions.manage_guild:  # a modal is its own interaction
            raise SetupProblem("You need the Manage Server permission for that.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        url = (api_url or SONORAN_API_URL).rstrip("/")
        problem = self._url_problem(url) or _field_problem(community_id, api_key)
        if problem is None and not await self._has_room(interaction.guild_id, url, community_id):
            problem = "This bot serves as many communities as its host allows: ask the bot's host."
        verdict = None
        if problem is None:
            verdict = await verify_cad(self.host.session, community_id, api_key, url)
            problem = None if verdict.ok else verdict.sentence
        if problem is not None or verdict is None:
            await self._say(interaction, f"Nothing was stored. {problem}")
            return
        linked_before = await self.host.registry.guild(interaction.guild_id) is not None
        try:
            tenant, created = await self.host.link(
                interaction.guild_id, community_id=community_id, api_key=api_key, api_url=url
            )
        except (KeyInUse, KeyMismatch) as error:
            await self.report(interaction, error)
            return
        except Exception:
            log.exception("guild %s: the community could not be put to work", interaction.guild_id)
            if linked_before:  # its setup is kept (stored first); it starts at the next restart
                text = "The key was stored, but the community could not be restarted: ask the bot's host to restart it."
            else:  # a new link: undone, so that the registry and the bot agree again
                await self.host.remove_guild(interaction.guild_id)
                text = "Nothing was kept: the community could not be started. Try again, or ask the bot's host."
            await self._say(interaction, text)
            return
        what = f"linked community {community_id} at {url}" + (" (new)" if created else "")
        await self._audit(interaction, what)
        plan = f" Plan: {verdict.plan.name}." if verdict.plan else ""
        servers = ", ".join(f"{s.id} ({s.name or 'unnamed'})" for s in verdict.servers)
        await self._say(
            interaction,
            f"Linked to community {community_id}; the key's fingerprint is `{tenant.fingerprint}`.{plan} "
            f"CAD servers: {servers}. {verdict.sentence}\nNext: /setup feed to post its calls in a channel.",
        )

    def _url_problem(self, url: str) -> str | None:
        return url_problem(url, allow_private=self.bot.settings.hosting.allow_private_api_urls)

    async def _has_room(self, guild_id: int, url: str, community_id: str) -> bool:
        registry = self.host.registry
        if await registry.tenant_by_community(url, community_id) is not None:
            return True
        return await registry.count_tenants() < self.bot.settings.hosting.max_communities

    # --- channels -------------------------------------------------------------------------------
    @app_commands.command(name="feed", description="Post the community's calls in a channel (adds or replaces)")
    @app_commands.describe(
        channel="Where the calls are posted",
        server="The CAD server (1 unless the community has several)",
        calls="Which 911 calls",
        ping_role="A role pinged on EMERGENCY calls",
        dispatch="Also post dispatch calls, kept up to date",
    )
    async def feed(
        self,
        interaction: Interaction,
        channel: discord.TextChannel,
        server: SERVER_IDS = 1,
        calls: Literal["emergency", "civil", "both"] = "both",
        ping_role: discord.Role | None = None,
        dispatch: bool = False,
    ) -> None:
        self._own(interaction, channel, ping_role)
        warning = self._postable(interaction, channel, ping_role)
        feed = FeedSettings(
            server_id=server,
            channel_id=channel.id,
            calls=CALLS_CHOICES[calls],
            ping_role_id=ping_role.id if ping_role else 0,
            dispatch=dispatch,
        )

        def change(config: GuildConfig) -> GuildConfig:
            return put(config, "feeds", feed)

        what = f"feed #{channel.name}: server {server}, {calls_name(feed.calls)}" + (", dispatch" if dispatch else "")
        await self._change(interaction, change, what, warning, server=server)

    @app_commands.command(name="feed-remove", description="Stop posting calls in a channel")
    async def feed_remove(self, interaction: Interaction, channel: discord.TextChannel) -> None:
        self._own(interaction, channel, None)

        def change(config: GuildConfig) -> GuildConfig:
            return take(config, "feeds", channel.id, channel.name)

        await self._change(interaction, change, f"removed the feed of #{channel.name}")

    @app_commands.command(name="alerts", description="Post panic alerts in a channel (adds or replaces)")
    @app_commands.describe(channel="Where panics are alerted", server="The CAD server", ping_role="A role pinged")
    async def alerts(
        self,
        interaction: Interaction,
        channel: discord.TextChannel,
        server: SERVER_IDS = 1,
        ping_role: discord.Role | None = None,
    ) -> None:
        self._own(interaction, channel, ping_role)
        warning = self._postable(interaction, channel, ping_role)
        alert = AlertSettings(server_id=server, channel_id=channel.id, ping_role_id=ping_role.id if ping_role else 0)

        def change(config: GuildConfig) -> GuildConfig:
            return put(config, "alerts", alert)

        await self._change(
            interaction, change, f"panic alerts #{channel.name}: server {server}", warning, server=server
        )

    @app_commands.command(name="alerts-remove", description="Stop posting panic alerts in a channel")
    async def alerts_remove(self, interaction: Interaction, channel: discord.TextChannel) -> None:
        self._own(interaction, channel, None)

        def change(config: GuildConfig) -> GuildConfig:
            return take(config, "alerts", channel.id, channel.name)

        await self._change(interaction, change, f"removed the panic alerts of #{channel.name}")

    @app_commands.command(name="board", description="Keep a unit board in a channel (adds or replaces)")
    @app_commands.describe(channel="Where the board is kept", server="The CAD server")
    async def board(self, interaction: Interaction, channel: discord.TextChannel, server: SERVER_IDS = 1) -> None:
        self._own(interaction, channel, None)
        warning = self._postable(interaction, channel)
        board = BoardSettings(server_id=server, channel_id=channel.id)

        def change(config: GuildConfig) -> GuildConfig:
            return put(config, "boards", board)

        await self._change(interaction, change, f"unit board #{channel.name}: server {server}", warning, server=server)

    @app_commands.command(name="board-remove", description="Stop keeping a unit board in a channel")
    async def board_remove(self, interaction: Interaction, channel: discord.TextChannel) -> None:
        self._own(interaction, channel, None)

        def change(config: GuildConfig) -> GuildConfig:
            return take(config, "boards", channel.id, channel.name)

        await self._change(interaction, change, f"removed the unit board of #{channel.name}")

    @app_commands.command(name="audit", description="Record every write and refusal in a channel (set again: off)")
    @app_commands.describe(channel="A channel only admins see")
    async def audit(self, interaction: Interaction, channel: discord.TextChannel) -> None:
        self._own(interaction, channel, None)
        turning_off = self.host.guild_config(_guild(interaction)).audit_channel_id == channel.id
        warning = None if turning_off else self._postable(interaction, channel)

        def change(config: GuildConfig) -> GuildConfig:
            if config.audit_channel_id == channel.id:
                return config.model_copy(update={"audit_channel_id": 0})
            used = {f.channel_id for f in config.feeds} | {b.channel_id for b in config.boards}
            if channel.id in used | {a.channel_id for a in config.alerts}:
                raise SetupProblem(
                    f"#{channel.name} is also a feed, board or alert channel: the audit records would show there. "
                    "Give the audit a channel of its own."
                )
            return config.model_copy(update={"audit_channel_id": channel.id})

        what = "audit channel off" if turning_off else f"audit channel #{channel.name}"
        await self._change(interaction, change, what, warning)

    # --- roles and numbers ----------------------------------------------------------------------
    @app_commands.command(name="dispatcher-role", description="A role that may dispatch (set again to remove it)")
    async def dispatcher_role(self, interaction: Interaction, role: discord.Role) -> None:
        await self._toggle_role(interaction, role, "dispatcher_role_ids", "dispatcher")

    @app_commands.command(name="caller-role", description="A role that may file 911 calls (set again to remove it)")
    async def caller_role(self, interaction: Interaction, role: discord.Role) -> None:
        await self._toggle_role(interaction, role, "caller_role_ids", "caller")

    async def _toggle_role(self, interaction: Interaction, role: discord.Role, field: str, what: str) -> None:
        self._own(interaction, None, role)
        if role.is_default():
            raise SetupProblem("@everyone is not a role to choose: leave the list empty to let everyone.")
        holds = role.id in getattr(self.host.guild_config(_guild(interaction)), field)

        def change(config: GuildConfig) -> GuildConfig:
            ids: list[int] = list(getattr(config, field))
            ids = [i for i in ids if i != role.id] if role.id in ids else [*ids, role.id]
            return config.model_copy(update={field: ids})

        await self._change(interaction, change, f"{'removed' if holds else 'added'} {what} role @{role.name}")

    @app_commands.command(name="cooldowns", description="The community's cooldowns, in seconds per member")
    @app_commands.describe(
        call_911="Between one member's 911 calls", units="Between /units", status="Between /status or /panic"
    )
    async def cooldowns(
        self,
        interaction: Interaction,
        call_911: COOLDOWN | None = None,
        units: COOLDOWN | None = None,
        status: COOLDOWN | None = None,
    ) -> None:
        given = {
            "cooldown_911_seconds": call_911,
            "units_cooldown_seconds": units,
            "member_cooldown_seconds": status,
        }
        update = {key: value for key, value in given.items() if value is not None}
        await interaction.response.defer(ephemeral=True, thinking=True)

        def change(options: CommunityOptions) -> CommunityOptions:
            return options.model_copy(update=update)

        options = await self.host.set_options(_guild(interaction), change)
        await self._audit(interaction, f"cooldowns: {cooldowns_text(options)}")
        await self._say(interaction, f"Cooldowns: {cooldowns_text(options)}.")

    # --- what is set up, and leaving ------------------------------------------------------------
    @app_commands.command(name="show", description="What this server has set up (the key only as a fingerprint)")
    async def show(self, interaction: Interaction) -> None:
        guild_id = _guild(interaction)
        hosted = self.host.require(guild_id)
        settings = self.bot.settings
        url = (
            push_url(settings.push, hosted.tenant.push_token.get_secret_value(), settings.hosting.push_base_url)
            if settings.push.enabled
            else None
        )
        changes = await self.host.registry.changes(guild_id)
        text = show_text(
            hosted.tenant, hosted.guilds[guild_id], push_url=url, other_servers=len(hosted.guilds) - 1, changes=changes
        )
        await interaction.response.send_message(text[:2000], ephemeral=True, allowed_mentions=NO_PINGS)

    @app_commands.command(name="push-rotate", description="Replace the community's push URL (the old one stops now)")
    async def push_rotate(self, interaction: Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        tenant = await self.host.rotate_push_token(_guild(interaction))
        await self._audit(interaction, "replaced the push URL")
        settings = self.bot.settings
        url = push_url(settings.push, tenant.push_token.get_secret_value(), settings.hosting.push_base_url)
        await self._say(interaction, f"The old push URL stopped working. The new one: ||{url}||")

    @app_commands.command(name="remove", description="Unlink this server: its work stops (asks first)")
    async def remove_command(self, interaction: Interaction) -> None:
        guild_id = _guild(interaction)
        hosted = self.host.require(guild_id)
        last = len(hosted.guilds) == 1
        consequence = (
            "This is the community's last server: its API key and its state are deleted too."
            if last
            else "The community stays linked from its other servers."
        )
        await interaction.response.send_message(
            f"Unlink this server from community {hosted.tenant.community_id}? Its feeds, alerts and boards stop "
            f"now. {consequence}",
            view=ConfirmRemoval(self, interaction.user.id),
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )

    async def remove(self, interaction: Interaction) -> None:
        guild_id = _guild(interaction)
        await interaction.response.edit_message(content="Removing…", view=None)
        await self._audit(interaction, "unlinked this server")  # while the audit channel is still set up
        last = await self.host.remove_guild(guild_id)
        done = "Unlinked. The community's API key and state were deleted." if last else "Unlinked."
        await interaction.edit_original_response(content=done)

    # --- shared steps -------------------------------------------------------------------------------
    def _own(
        self, interaction: Interaction, channel: discord.abc.GuildChannel | None, role: discord.Role | None
    ) -> None:
        """Options name this server's channel and role (a crafted interaction could name others)."""
        guild_id = _guild(interaction)
        if channel is not None and channel.guild.id != guild_id:
            raise SetupProblem("That channel is not in this server.")
        guild = interaction.guild
        if role is not None and (role.guild.id != guild_id or (guild is not None and guild.get_role(role.id) is None)):
            raise SetupProblem("That role is not in this server.")

    def _postable(
        self, interaction: Interaction, channel: discord.TextChannel, ping_role: discord.Role | None = None
    ) -> str | None:
        """Refuses a channel the bot cannot post in; a ping role that would ping nobody is a warning."""
        me = channel.guild.me
        if me is None:
            raise SetupProblem(f"The bot cannot see #{channel.name}: give it View Channel there, then try again.")
        missing = missing_feed_permissions(channel.permissions_for(me))
        if missing:
            raise SetupProblem(
                f"The bot cannot post in #{channel.name}: it lacks {', '.join(missing)} there. Grant those to its "
                "role in that channel, then try again. Nothing was changed."
            )
        if ping_role is not None:
            check = ping_role_check(self.bot, channel.id, ping_role.id, "ping_role")
            if not check.ok:
                return f"Note: {check.detail}; {check.fix}."
        return None

    async def _server_problem(self, guild_id: int, server: int) -> str | None:
        """A CAD server the community does not have (the CAD is asked; if it cannot answer now,
        the server is taken as given)."""
        hosted = self.host.hosted_for(guild_id)
        if hosted is None:
            return None
        try:
            servers = await hosted.services.sonoran.get_servers()
        except SonoranError:
            return None
        known = sorted(found.id for found in servers)
        if not known or server in known:
            return None
        return f"The CAD has no server {server} (it has {', '.join(map(str, known))}). Nothing was changed."

    async def _change(
        self,
        interaction: Interaction,
        change: Callable[[GuildConfig], GuildConfig],
        what: str,
        warning: str | None = None,
        *,
        server: int | None = None,
    ) -> None:
        guild_id = _guild(interaction)
        self.host.guild_config(guild_id)  # NotSetUp before deferring: said at once
        await interaction.response.defer(ephemeral=True, thinking=True)
        if server is not None and (problem := await self._server_problem(guild_id, server)):
            raise SetupProblem(problem)
        try:
            await self.host.configure(guild_id, change)
        except ValidationError as error:
            raise SetupProblem(f"Nothing was changed: {_problem_text(error)}") from None
        await self._audit(interaction, what)
        await self._say(interaction, f"Done: {what}." + (f"\n{warning}" if warning else ""))

    async def _audit(self, interaction: Interaction, what: str) -> None:
        guild_id = _guild(interaction)
        await self.host.record(guild_id, interaction.user, what)
        log.info("guild %s: /setup by %s: %s", guild_id, interaction.user.id, what)
        community = self.bot.communities.find(guild_id)
        audit = community.audit_log(guild_id) if community is not None else None
        if audit is not None:
            audit.record(
                AuditRecord(
                    member_name=interaction.user.display_name,
                    member_id=interaction.user.id,
                    action="/setup",
                    server_id=community.main_server if community is not None else 1,
                    outcome=DONE,
                    detail=what,
                )
            )

    @staticmethod
    async def _say(interaction: Interaction, text: str) -> None:
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)


def _guild(interaction: Interaction) -> int:
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def _field_problem(community_id: str, api_key: str) -> str | None:
    if not community_id or not api_key:
        return "Give both the community ID and the API key."
    if any(not c.isprintable() or c.isspace() for c in community_id + api_key):
        return "The community ID and the API key hold no spaces: copy them again from the CAD."
    return None


async def setup(bot: DispatchBot) -> None:
    await bot.add_cog(Setup(bot))
