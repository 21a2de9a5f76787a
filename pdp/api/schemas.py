"""Marshmallow schemas of every request and response body of the admin API.

Request schemas are strict: an unknown field, a value of the wrong JSON type
(``"true"`` for a boolean, ``1.0`` or ``true`` for an integer) or a missing
required field is a 400 that names the field (:func:`load`). Response schemas
fix the shape of what the service answers; ``openapi.yaml`` describes the same
shapes and a contract test checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from pdp.api.json import field_path
from pdp.errors import RequestError
from pdp.service.policies import MAX_PATH_LENGTH, is_policy_file

# --------------------------------------------------------------------------- loading


def load(schema: Schema, data: Mapping[str, Any]) -> dict:
    """``data`` validated by ``schema``; the first problem as a :class:`RequestError`."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        field, message = first_problem(exc.messages)
        code = {"Unknown field.": "unknown_field",
                "Missing data for required field.": "missing_field"}.get(message,
                                                                          "invalid_field")
        text = {"unknown_field": "unknown field", "missing_field": "required field is missing"
                }.get(code, message[:1].lower() + message[1:].rstrip("."))
        raise RequestError(f"{field}: {text}" if field else text, field=field or None,
                           code=code) from None


def first_problem(messages: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of marshmallow's nested error messages,
    fields in sorted order so that the answer is stable."""
    if isinstance(messages, str):
        return path, messages
    if isinstance(messages, list):
        return first_problem(messages[0], path) if messages else (path, "invalid")
    if isinstance(messages, dict) and messages:
        key = sorted(messages, key=str)[0]
        child = path if key == "_schema" else field_path(path, key)
        return first_problem(messages[key], child)
    return path, "invalid"


class Strict(Schema):
    class Meta:
        unknown = RAISE


class StrictBoolean(fields.Boolean):
    """``true``/``false`` only: no ``"true"``, ``1`` or ``"yes"``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def path_problem(path: str) -> str | None:
    """Why ``path`` may not name a file of a policy set, or ``None`` if it may."""
    if not path or len(path) > MAX_PATH_LENGTH:
        return f"a file path has 1 to {MAX_PATH_LENGTH} characters"
    if (path.startswith("/") or "\\" in path or any(ord(c) < 32 or c == "\x7f" for c in path)
            or any(p in ("", ".", "..") or p.startswith(".") for p in path.split("/"))):
        return ("not a valid file path: it must be relative, '/'-separated, without "
                "'..', '.', empty or hidden parts")
    if not is_policy_file(path):
        return "a policy set holds only '*.policy' files and 'data/**/*.json' reference data"
    return None


class PolicyFiles(fields.Field):
    """``{"docs.policy": "<text>", "data/users.json": "<text>"}``; errors name the path."""

    default_error_messages = {"invalid": "Not an object of file paths to file contents.",
                              "empty": "At least one file is required."}

    def _deserialize(self, value, attr, data, **kwargs) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if not value:
            raise self.make_error("empty")
        problems: dict[str, list[str]] = {}
        for path, content in value.items():
            problem = path_problem(path)
            if problem is None and not isinstance(content, str):
                problem = "the file's content must be a string"
            if problem is not None:
                problems[path] = [problem]
        if problems:
            raise ValidationError(problems)
        return dict(value)


# --------------------------------------------------------------------------- requests

class CheckRequest(Strict):
    files = PolicyFiles(required=True)


class PublishRequest(Strict):
    files = PolicyFiles(required=True)
    #: Make the published version the active one (in the same transaction).
    activate = StrictBoolean(load_default=False)
    #: The latest version the publisher started from (0: none yet); 409 if another
    #: version was published since.
    base_version = fields.Integer(strict=True, allow_none=True, load_default=None,
                                  validate=validate.Range(min=0))


class ActivateRequest(Strict):
    """The body of an activation is optional and has no fields (yet)."""


# --------------------------------------------------------------------------- responses

class PolicySetOut(Schema):
    name = fields.String()
    active_version = fields.Integer(allow_none=True)
    latest_version = fields.Integer(allow_none=True)
    created_at = fields.AwareDateTime()


class PolicySetListOut(Schema):
    policy_sets = fields.List(fields.Nested(PolicySetOut))


class VersionOut(Schema):
    policy_set = fields.String()
    version = fields.Integer(attribute="number")
    content_hash = fields.String()
    policy_ids = fields.List(fields.String())
    published_by = fields.String()
    published_at = fields.AwareDateTime()
    active = fields.Boolean()


class VersionListOut(Schema):
    policy_set = fields.String()
    versions = fields.List(fields.Nested(VersionOut))


class PolicyOut(Schema):
    """What the admin API tells about one policy of a version."""

    id = fields.String()
    effect = fields.String()
    #: ``null``: any action / any resource type (``*`` in the source).
    actions = fields.List(fields.String(), allow_none=True)
    resource_types = fields.List(fields.String(), allow_none=True)
    reason = fields.String(allow_none=True)
    annotations = fields.Dict(keys=fields.String(), values=fields.String())
    file = fields.String()
    line = fields.Integer()


class VersionDetailOut(VersionOut):
    files = fields.Dict(keys=fields.String(), values=fields.String())
    policies = fields.List(fields.Nested(PolicyOut))


class PublishOut(VersionOut):
    created = fields.Boolean()
    unchanged = fields.Boolean()
    activated = fields.Boolean()


class ActivationOut(VersionOut):
    changed = fields.Boolean()
    previous_version = fields.Integer(allow_none=True)


class CheckOut(Schema):
    ok = fields.Boolean()
    policies = fields.Integer()
    policy_ids = fields.List(fields.String())
    content_hash = fields.String()
    files = fields.List(fields.String())
