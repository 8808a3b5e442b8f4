"""The OpenAPI description of the v3 events API (:mod:`api.v3`).

Every answer, error or not, is ``{"APIVersion":3,"result":0|1,...}``: errors add ``reason`` and
``code`` (and ``index`` for a bad event of a batch).
"""

from __future__ import annotations

from api.openapi import INTEGER, STRING, Parameter, Reply, json_object, json_reply

TAGS = ("v3 events",)
_FIELDS = {
    "nonce": "A new random string for every call (the client sends 55 characters of 0-9a-z)",
    "aid": "The app's id (`replayd v3 app create`)",
    "user": "The user's name (empty for `user/new`)",
    "data": "The call's JSON, as a string",
    "h": "sha1 hex of urlenc(data) + aid + urlenc(user) + urlenc(nonce) + secret + "
    "sha1hex(password), urlenc being Java's URLEncoder",
}
ANSWER = {
    **json_object(
        {
            "APIVersion": INTEGER,
            "result": INTEGER,
            "reason": STRING,
            "code": STRING,
            "index": INTEGER,
        },
        ["APIVersion", "result"],
    ),
}
_REASONS = {
    200: "result 1: done",
    400: "Bad data (invalid JSON, not an array, a bad event: its index is named; a bad filter)",
    403: "Authentication failed (unknown app or user, wrong signature, replayed nonce)",
    404: "No such interface, or no such event of the user",
    405: "Wrong method",
    409: "User already exists",
    413: "Over the request's cap (1000 events, --v3-size-limit bytes)",
    503: "Overloaded or storage unavailable: retry later",
}
SIGNED_FORM = {
    "application/x-www-form-urlencoded": json_object(
        {name: STRING for name in _FIELDS}, ["nonce", "aid", "user", "data", "h"]
    )
}
REGISTRATION_FORM = {
    "application/x-www-form-urlencoded": json_object(
        {name: STRING for name in _FIELDS}, ["aid", "data"]
    )
}
SIGNED_QUERY = tuple(
    Parameter(name, "query", description=text, required=name != "data")
    for name, text in _FIELDS.items()
)


def replies(*statuses: int) -> dict[int, Reply]:
    """The v3 answers of these statuses (200 always)."""
    return {s: json_reply(_REASONS[s], ANSWER) for s in (200, *statuses)}


_NUMBER = {"type": "number"}
_ENTITY = json_object({"key": STRING, "value": {}}, ["key"])  # no value: null
_EVENT = json_object(
    {
        "id": INTEGER,
        "action": STRING,
        "type": STRING,
        "timestamp": _NUMBER,
        "session": STRING,
        "entities": {"type": "array", "items": _ENTITY},
    },
    ["id", "action", "type", "timestamp", "session", "entities"],
)
SHOW_REPLY = json_reply(
    "result 1: the matching events, oldest first",
    json_object(
        {
            "APIVersion": INTEGER,
            "result": INTEGER,
            "total_events": INTEGER,
            "events": {"type": "array", "items": _EVENT},
        },
        ["APIVersion", "result", "total_events", "events"],
    ),
)
VALUES_REPLY = json_reply(
    "result 1: the distinct values",
    json_object(
        {"APIVersion": INTEGER, "result": INTEGER, "values": {"type": "array", "items": {}}},
        ["APIVersion", "result", "values"],
    ),
)
