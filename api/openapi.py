"""The OpenAPI 3.1 description of the HTTP API, built from the routes themselves.

A route is described by decorating its view function with :func:`operation` (summary, security,
query/header parameters, request body, every status it answers). :func:`describe` walks the app's
URL map: the paths, methods and path parameters come from the routing rules, the rest from the
decorator, so a blueprint registered twice (the ingest routes, also under ``/ingest``) or a new
blueprint is described without touching this module. Routes without the decorator are left out.
``GET /api/openapi.json`` (:data:`bp`) serves the description.

Schemas are plain JSON Schema dicts; :func:`component` names one under ``components/schemas``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
from quart import Blueprint, Response, current_app
from quart_trio import QuartTrio
from werkzeug.routing import IntegerConverter, Rule

from api.errors import json_response

F = TypeVar("F", bound=Callable[..., Any])

OPERATION_ATTRIBUTE = "__replayd_openapi__"
SPEC_KEY = "replayd.openapi"
OPENAPI_PATH = "/api/openapi.json"

# Security scheme names (what ``operation(security=...)`` takes).
ORG_API_KEY = "orgApiKey"
SESSION_TOKEN = "sessionToken"
ORG_API_KEY_BEARER = "orgApiKeyBearer"  # the public API v2's form of the same key
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    ORG_API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "The organization API key, raw or as `Bearer <key>`.",
    },
    ORG_API_KEY_BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "The organization API key as `Bearer <key>` (the public API v2).",
    },
    SESSION_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "The session token that `POST /v1/web/start` answered.",
    },
}

_COMPONENTS: dict[str, dict[str, Any]] = {}


def component(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Register ``schema`` under ``components/schemas/<name>``; returns a ``$ref`` to it."""
    if _COMPONENTS.setdefault(name, schema) is not schema:
        raise ValueError(f"schema component {name!r} is defined twice")
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or JSON null."""
    return {"anyOf": [schema, {"type": "null"}]}


def json_object(
    properties: Mapping[str, dict[str, Any]], required: Sequence[str] = ()
) -> dict[str, Any]:
    """An object schema (other properties allowed, as the routes ignore them)."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
RETRY_AFTER = {"type": "string", "pattern": "^[0-9]+$"}  # the header, in whole seconds

# ``{"error": "..."}``: every error outside ``/api/v1`` (api.errors); the public API v1 has its own.
ERROR = component(
    "Error",
    {
        **json_object({"error": STRING}, ["error"]),
        "description": "Every error outside `/api/v1` (web ingest, operations, unknown paths); "
        "the public API v1 answers `V1Errors`.",
    },
)


@attrs.frozen(slots=True)
class Reply:
    """One documented answer: a description, its body (media type -> schema; none if empty) and
    the headers it carries (name -> schema)."""

    description: str
    content: Mapping[str, dict[str, Any]] = attrs.field(factory=dict)
    headers: Mapping[str, dict[str, Any]] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        if self.content:
            out["content"] = {media: {"schema": s} for media, s in self.content.items()}
        if self.headers:
            out["headers"] = {name: {"schema": s} for name, s in self.headers.items()}
        return out


def json_reply(description: str, schema: dict[str, Any], **headers: dict[str, Any]) -> Reply:
    """A JSON answer (``headers`` spelled with ``_`` for ``-``, e.g. ``Retry_After``)."""
    return Reply(
        description,
        {"application/json": schema},
        {name.replace("_", "-"): s for name, s in headers.items()},
    )


def error_reply(description: str, **headers: dict[str, Any]) -> Reply:
    """An ``{"error": "..."}`` answer."""
    return json_reply(description, ERROR, **headers)


@attrs.frozen(slots=True)
class Parameter:
    """A query or header parameter (path parameters come from the routing rule; one given here
    with ``where="path"`` only refines that parameter's schema and description)."""

    name: str
    where: str  # "query", "header" or "path"
    schema: dict[str, Any] = attrs.field(factory=lambda: dict(STRING))
    description: str = ""
    required: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "in": self.where,
            "required": self.required or self.where == "path",
            "schema": self.schema,
        }
        if self.description:
            out["description"] = self.description
        return out


@attrs.frozen(slots=True)
class Operation:
    """What :func:`operation` attaches to a view function."""

    summary: str
    responses: Mapping[int, Reply]
    tags: tuple[str, ...] = ()
    security: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    body: Mapping[str, dict[str, Any]] | None = None  # media type -> schema
    body_required: bool = False
    description: str = ""


def operation(
    summary: str,
    *,
    responses: Mapping[int, Reply],
    tags: Sequence[str] = (),
    security: Sequence[str] = (),
    parameters: Sequence[Parameter] = (),
    body: Mapping[str, dict[str, Any]] | None = None,
    body_required: bool = False,
    description: str = "",
) -> Callable[[F], F]:
    """Describe a route in the OpenAPI document (put it under the ``@bp.get(...)`` decorator).

    ``responses`` must list every status the route answers, errors included: the schemathesis
    test checks the server against it. ``security`` names :data:`SECURITY_SCHEMES` entries.
    """
    unknown = set(security) - set(SECURITY_SCHEMES)
    if unknown:
        raise ValueError(f"unknown security schemes {sorted(unknown)}")
    described = Operation(
        summary=summary,
        responses=dict(responses),
        tags=tuple(tags),
        security=tuple(security),
        parameters=tuple(parameters),
        body=None if body is None else dict(body),
        body_required=body_required,
        description=description,
    )

    def decorate(view: F) -> F:
        setattr(view, OPERATION_ATTRIBUTE, described)
        return view

    return decorate


_PATH_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# A path segment as the default converter matches it: one or more characters, no "/".
PATH_SEGMENT = {"type": "string", "pattern": "^[^/]+$"}


def _path_parameters(rule: Rule, refined: Mapping[str, Parameter]) -> list[dict[str, Any]]:
    out = []
    # werkzeug keeps the converters of a rule only in this attribute.
    for name, converter in rule._converters.items():
        if name in refined:
            out.append(refined[name].to_json())
            continue
        if isinstance(converter, IntegerConverter):
            schema: dict[str, Any] = {"type": "integer", "minimum": 0}
        else:
            schema = dict(PATH_SEGMENT)
        out.append(Parameter(name, "path", schema).to_json())
    return out


def _operation_json(rule: Rule, method: str, op: Operation) -> dict[str, Any]:
    refined = {p.name: p for p in op.parameters if p.where == "path"}
    parameters = _path_parameters(rule, refined)
    parameters += [p.to_json() for p in op.parameters if p.where != "path"]
    out: dict[str, Any] = {
        "operationId": f"{rule.endpoint}.{method.lower()}",
        "summary": op.summary,
        "responses": {str(status): reply.to_json() for status, reply in op.responses.items()},
    }
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    out["security"] = [{name: []} for name in op.security]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {media: {"schema": schema} for media, schema in op.body.items()},
        }
    return out


def describe(app: QuartTrio, *, title: str = "replayd", version: str = "1") -> dict[str, Any]:
    """The OpenAPI document of every decorated route of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op = getattr(app.view_functions[rule.endpoint], OPERATION_ATTRIBUTE, None)
        if op is None or rule.websocket:
            continue
        path = _PATH_VARIABLE.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation_json(rule, method, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": dict(_COMPONENTS), "securitySchemes": SECURITY_SCHEMES},
    }


bp = Blueprint("openapi", __name__)


@bp.get(OPENAPI_PATH)
@operation(
    "This OpenAPI description",
    tags=("meta",),
    responses={200: json_reply("The OpenAPI 3.1 document", {"type": "object"})},
)
async def openapi_document() -> Response:
    # Built once per app: the routes do not change after the app is created.
    spec = current_app.extensions.get(SPEC_KEY)
    if spec is None:
        spec = current_app.extensions[SPEC_KEY] = describe(current_app)  # type: ignore[arg-type]
    return json_response(spec)
