"""Where a hosted community's API URL may point. A server admin types it in /setup cad, so the
bot must not be turned into a way into its host's own network: the URL must be public `https://`
(checked in the form, literal addresses in every spelling included), and every name the hosted
session resolves must resolve to public addresses only (checked at connect time, so a public name
that resolves, or is later re-pointed, to a private address is refused too). The transport follows
no redirects. `hosting.allow_private_api_urls` lifts both, for tests and private CADs.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

PRIVATE = "The API URL points to a private address; the bot only reaches public ones."
LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet")


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False


def literal_address(host: str) -> str | None:
    """The address a host written as a number stands for, in any spelling (127.1, 2130706433,
    0x7f000001, [::1]), or None for a name."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))  # the libc's own reading of IPv4 shorthand
    except OSError:
        return None


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """What is wrong with an API URL typed in /setup cad, in one sentence, or None."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
        parts.port  # noqa: B018  (a bad port raises here)
    except ValueError:
        return f"{url} is not an address the bot can use: give an https:// URL, or leave API URL empty."
    if parts.scheme not in ("https", "http") or not host:
        return f"{url} is not an address the bot can use: give an https:// URL, or leave API URL empty."
    if allow_private:
        return None
    if parts.scheme != "https":
        return "The API URL must be https://."
    if parts.username or parts.password:
        return "The API URL may not hold a user name or password."
    address = literal_address(host)
    if address is not None:
        return None if is_public(address) else PRIVATE
    if host == "localhost" or host.endswith(LOCAL_NAMES):
        return PRIVATE
    return None


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, refusing a name that resolves to any address that is not public."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not found or not all(is_public(str(entry["host"])) for entry in found):
            raise OSError(f"{host} resolves to an address that is not public; the bot only reaches public CADs")
        return found

    async def close(self) -> None:
        await self._inner.close()


def hosted_connector(limit: int, *, allow_private: bool, **kwargs: Any) -> aiohttp.TCPConnector:
    resolver = None if allow_private else PublicResolver()
    return aiohttp.TCPConnector(limit=limit, resolver=resolver, **kwargs)
