"""User-Agent and IP facts for the start answer."""

from __future__ import annotations

from engine.client_info import (
    MAX_USER_AGENT_LENGTH,
    ClientInfo,
    UserAgentParser,
    country_of_ip,
    parse_user_agent,
)

# The User-Agent of the captured start request (shared fixtures, web-basic/requests.jsonl).
CAPTURED_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36"
)


def test_captured_headless_chrome_is_linux_chrome_desktop() -> None:
    info = parse_user_agent(CAPTURED_UA)
    assert (info.os, info.browser, info.device, info.device_type) == (
        "Linux",
        "Chrome",
        "",
        "desktop",
    )
    assert info.browser_version.startswith("156")


def test_phones_and_tablets() -> None:
    iphone = parse_user_agent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    )
    assert (iphone.os, iphone.os_version, iphone.device, iphone.device_type) == (
        "iOS",
        "17.0",
        "iPhone",
        "mobile",
    )
    android = parse_user_agent(
        "Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/112.0.0.0 Mobile Safari/537.36"
    )
    assert (android.os, android.device_type) == ("Android", "mobile")
    ipad = parse_user_agent(
        "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.0 Mobile/15E148 Safari/604.1"
    )
    assert ipad.device_type == "tablet"


def test_unknown_or_empty_user_agents_give_empty_facts() -> None:
    assert parse_user_agent("") == ClientInfo()
    odd = parse_user_agent("SomeNewBrowser/1.0")
    assert (odd.os, odd.browser, odd.device) == ("", "", "")


def test_country_of_ip() -> None:
    assert country_of_ip("127.0.0.1") == ""
    assert country_of_ip("192.168.1.20") == ""
    assert country_of_ip("::1") == ""
    assert country_of_ip("not an ip") == ""
    assert country_of_ip("8.8.8.8") == "US"
    assert country_of_ip("81.2.69.160") == "GB"
    assert country_of_ip("2001:4860:4860::8888") == "US"


async def test_user_agent_parser_caps_caches_and_stays_bounded() -> None:
    parser = UserAgentParser(size=2)
    long_agent = CAPTURED_UA + " " + "x" * 5_000
    info = await parser.parse(long_agent)
    assert info == parse_user_agent(long_agent[:MAX_USER_AGENT_LENGTH])
    assert (info.os, info.browser) == ("Linux", "Chrome")
    # Agents that differ only past the cap are one entry: the cache is keyed by what is parsed.
    assert await parser.parse(long_agent + "y") == info
    assert len(parser) == 1
    for agent in (CAPTURED_UA[:60], "curl/8.5.0", "Wget/1.21"):
        await parser.parse(agent)
    assert len(parser) == 2  # least recently used entries left
    assert await parser.parse("Wget/1.21") == parse_user_agent("Wget/1.21")
