"""The OpenAPI schemas and answers of the mobile ingest routes (:mod:`api.ingest_mobile`).

Errors are ``{"error": "..."}`` as on web. The iOS SDK treats 401 as "start a new session"; a
start answer without one of its required keys (or with a wrong type) stops it silently.
"""

from __future__ import annotations

from typing import Any

from api.ingest_web_schema import NULLABLE_BOOLEAN, NULLABLE_NUMBER, NULLABLE_STRING
from api.openapi import (
    BOOLEAN,
    INTEGER,
    SESSION_TOKEN,
    STRING,
    Reply,
    component,
    error_reply,
    json_object,
    json_reply,
    nullable,
)

TAGS = ("mobile ingest",)
TOKEN = (SESSION_TOKEN,)

_NUMBER = NULLABLE_NUMBER
_STRING = NULLABLE_STRING
_BOOLEAN = NULLABLE_BOOLEAN
_DECIMAL = {"type": "string", "pattern": "^[0-9]+$"}

_DEVICE_FIELDS: dict[str, dict[str, Any]] = {
    "trackerVersion": _STRING,
    "token": _STRING,
    "revID": _STRING,
    "userUUID": _STRING,
    "userOSVersion": _STRING,
    "userDevice": _STRING,
    "userDeviceType": _STRING,
    "timestamp": _NUMBER,
    "timezone": _STRING,
    "deviceMemory": _NUMBER,
    "doNotRecord": _BOOLEAN,
    "width": _NUMBER,
    "height": _NUMBER,
}
START_REQUEST = component(
    "MobileStartRequest",
    json_object(
        {"projectKey": STRING, **_DEVICE_FIELDS, "platform": _STRING},
        ["projectKey", "trackerVersion"],
    ),
)
LEGACY_START_REQUEST = component(
    "IosStartRequest",
    json_object(
        {
            "projectKey": _STRING,
            "projectID": nullable({"anyOf": [INTEGER, _DECIMAL]}),
            **_DEVICE_FIELDS,
        },
    ),
)
START_ANSWER = component(
    "MobileStartAnswer",
    json_object(
        {
            "token": STRING,
            "userUUID": STRING,
            "sessionID": _DECIMAL,
            "projectID": _DECIMAL,
            "fps": INTEGER,
            "quality": {"enum": ["low", "standard", "high"]},
            "beaconSizeLimit": INTEGER,
            "framesSupport": BOOLEAN,
            "imagesHashList": {"type": "array", "items": STRING, "maxItems": 40},
        },
        [
            "token",
            "userUUID",
            "sessionID",
            "projectID",
            "fps",
            "quality",
            "beaconSizeLimit",
            "framesSupport",
            "imagesHashList",
        ],
    ),
)

START_BODY = {"application/json": START_REQUEST}
LEGACY_START_BODY = {"application/json": LEGACY_START_REQUEST}
BATCH_BODY = {"application/octet-stream": {"type": "string", "format": "binary"}}
EMPTY_OK = Reply("Stored (after the log committed it)")
START_OK = json_reply("The session token and settings", START_ANSWER)
UNAUTHORIZED = error_reply("No, an invalid, an expired or an unknown session's token")
LATE_UNAUTHORIZED = error_reply("No or an invalid token, or one of a session never recorded")
START_FORBIDDEN = error_reply(
    "No project key, not a mobile project, no User-Agent, or this device is sampled out"
)
UPGRADE = error_reply("The SDK is older than 1.0.9")
CONDITIONS = json_reply(
    "No conditions (record as usual)",
    json_object({"conditions": {"type": "array", "maxItems": 0}}, ["conditions"]),
)
