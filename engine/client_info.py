"""What a session start learns about the client: OS, browser and device from the User-Agent
(ua-parser, the uap-core regexes) and the country from the client IP (iptocc, offline RIR data).

Pure functions with no I/O apart from the packages' bundled data; the first ``parse_user_agent``
call compiles the regex set (a fraction of a second), so the server calls ``warm_up()`` at start.
"""

from __future__ import annotations

import ipaddress

import attrs
import iptocc
import ua_parser

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
