"""What a session start learns about the client: OS, browser and device from the User-Agent
(ua-parser, the uap-core regexes) and the country from the client IP (iptocc, offline RIR data).

Pure functions with no I/O apart from the packages' bundled data; the first ``parse_user_agent``
call compiles the regex set (a fraction of a second), so the server calls ``warm_up()`` at start.

Parsing costs time linear in the agent's length (about 7 ms for 1 KB, 0.3 s for 60 KB), and the
request path must not stall the event loop for it: :class:`UserAgentParser` caps the agent at
``MAX_USER_AGENT_LENGTH``, answers repeated agents from a bounded LRU and parses the others in a
worker thread, one at a time.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

import attrs
import iptocc
import trio
import ua_parser

from engine.start_info import StartInfo

MAX_USER_AGENT_LENGTH = 1024
"""Characters of a User-Agent that are parsed and stored. Real browsers send 100-300, with every
product token the regexes look for well inside that; only padding is lost."""
AGENT_CACHE_SIZE = 2048  # parsed agents kept (a few MB at most: keys are capped at 1 KB)

_OTHER = "Other"  # what ua-parser answers for a family it cannot name


@attrs.frozen(slots=True)
class ClientInfo:
    """User-Agent facts in the shape of the tracker's start response (empty string = unknown)."""

    os: str = ""
    os_version: str = ""
    browser: str = ""
    browser_version: str = ""
    device: str = ""  # e.g. "iPhone"; "" on desktops, as the reference backend answers
    device_type: str = ""  # desktop | mobile | tablet | other

    def applied_to(self, start: StartInfo) -> StartInfo:
        """``start`` with these User-Agent facts as its OS, browser and device."""
        return attrs.evolve(
            start,
            user_os=self.os,
            user_os_version=self.os_version,
            user_browser=self.browser,
            user_browser_version=self.browser_version,
            user_device=self.device,
            user_device_type=self.device_type,
        )


def _version(*parts: str | None) -> str:
    out = []
    for part in parts:
        if not part:
            break
        out.append(part)
    return ".".join(out)


def _named(family: str | None) -> str:
    return "" if not family or family == _OTHER else family


def parse_user_agent(user_agent: str) -> ClientInfo:
    """OS, browser and device of a User-Agent string (all empty when ua-parser knows nothing)."""
    if not user_agent:
        return ClientInfo()
    result = ua_parser.parse(user_agent)
    browser = os_name = device = ""
    browser_version = os_version = ""
    if result.user_agent is not None:
        browser = _named(result.user_agent.family)
        # Headless browsers are the same engines (the reference backend reports "Chrome" for them).
        browser = browser.removeprefix("Headless")
        ua = result.user_agent
        browser_version = _version(ua.major, ua.minor, ua.patch) if browser else ""
    if result.os is not None:
        os_name = _named(result.os.family)
        os_version = _version(result.os.major, result.os.minor, result.os.patch) if os_name else ""
    if result.device is not None:
        device = _named(result.device.family)
    return ClientInfo(
        os=os_name,
        os_version=os_version,
        browser=browser,
        browser_version=browser_version,
        device=device,
        device_type=_device_type(user_agent, os_name, device),
    )


def cap_user_agent(user_agent: str) -> str:
    """The part of ``user_agent`` that is parsed and stored (its first 1,024 characters)."""
    return user_agent[:MAX_USER_AGENT_LENGTH]


@attrs.define(eq=False)
class UserAgentParser:
    """``parse_user_agent`` for the request path: capped, cached, and off the event loop.

    The LRU is touched only from the trio thread, so it needs no lock; a miss is parsed in a worker
    thread under a limiter of one: ``re`` holds the GIL while it matches, so more threads would
    not parse faster, only take more turns from the event loop. Two requests missing on the same
    agent at once both parse it (harmless, and rare enough not to be worth a wait list).
    """

    size: int = AGENT_CACHE_SIZE
    _entries: OrderedDict[str, ClientInfo] = attrs.field(init=False, factory=OrderedDict)
    _limiter: trio.CapacityLimiter = attrs.field(
        init=False, factory=lambda: trio.CapacityLimiter(1)
    )

    async def parse(self, user_agent: str) -> ClientInfo:
        """What ``parse_user_agent`` says of the capped agent."""
        agent = cap_user_agent(user_agent)
        info = self._entries.get(agent)
        if info is not None:
            self._entries.move_to_end(agent)
            return info
        info = await trio.to_thread.run_sync(parse_user_agent, agent, limiter=self._limiter)
        self._entries[agent] = info
        self._entries.move_to_end(agent)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return info

    def __len__(self) -> int:
        return len(self._entries)


def _device_type(user_agent: str, os_name: str, device: str) -> str:
    if device == "Spider":
        return "other"
    if (
        device == "iPad"
        or "Tablet" in user_agent
        or (os_name == "Android" and "Mobile" not in user_agent)
    ):
        return "tablet"
    if os_name in ("iOS", "Android") or "Mobi" in user_agent:
        return "mobile"
    if os_name or device:
        return "desktop"
    return "other"


def country_of_ip(address: str) -> str:
    """ISO 3166 alpha-2 country of an IP address; "" if private, reserved, unknown or malformed."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    if not ip.is_global:
        return ""
    return iptocc.country_code(str(ip)) or ""


def warm_up() -> None:
    """Compile the User-Agent regexes now rather than on the first request."""
    parse_user_agent(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    )
