"""The OpenAPI schemas and answers of the mobile image routes (:mod:`api.ingest_mobile_images`).

Errors are ``{"error": "..."}``, as on every ingest route.
"""

from __future__ import annotations

from api.openapi import RETRY_AFTER, SESSION_TOKEN, STRING, Reply, error_reply, json_object

TAGS = ("mobile ingest",)
TOKEN = (SESSION_TOKEN,)

_FILE = {"type": "string", "format": "binary"}
# No field is required: the reference answers 200 to a form without a file (nothing stored).
MOBILE_BODY = {
    "multipart/form-data": json_object(
        {
            "batch": {
                **_FILE,
                "description": "gzip of a tar of `<firstTs>_1_<captureTs>.jpeg` files, or of a "
                "frames stream (`[u64 LE ms][u32 LE size][image]`...) with `type=frames`; only "
                "the first file part is read, whatever its name",
            },
            "type": {**STRING, "description": "`frames` for a frames stream, else a tar"},
            "projectKey": {**STRING, "description": "Sent by the SDKs, not checked"},
        }
    )
}
IOS_BODY = {
    "multipart/form-data": json_object(
        {
            "projectKey": {**STRING, "description": "The project of the token's session"},
            "projectID": {**STRING, "description": "Not accepted yet: send projectKey"},
        },
        ["projectKey"],
    )
}
_ERRORS: dict[int, Reply] = {
    400: error_reply("Empty or malformed body: bad multipart, gzip, tar or frames"),
    401: error_reply("No, an invalid or an expired session token: start again"),
    404: error_reply("No such path, or (old route) no such project"),
    408: error_reply("The body was not received in time"),
    413: error_reply("The body, an image or the unpacked upload is over its limit"),
    415: error_reply("Not multipart/form-data, or no boundary"),
    503: error_reply(
        "The images' database cannot be written, or the server is starting or stopping: retry "
        "later",
        Retry_After=RETRY_AFTER,
    ),
}
STORED = Reply("Stored (after the images' database committed them)")


def replies(*statuses: int, **special: Reply) -> dict[int, Reply]:
    """``{200: STORED}``, the error answers named by ``statuses``, and route-specific ones
    (``special`` keyed ``s403`` for 403)."""
    out = {200: STORED, **{status: _ERRORS[status] for status in statuses}}
    out.update({int(key.removeprefix("s")): reply for key, reply in special.items()})
    return out
