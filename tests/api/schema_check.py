"""Just enough JSON Schema (2020-12, as OpenAPI 3.1 uses it) to check that pdp's
answers match ``openapi.yaml``: ``$ref``, ``type`` (one or a list), ``properties``,
``required``, ``additionalProperties``, ``unevaluatedProperties: false`` over
``allOf``, ``items``, ``enum``, ``const``, ``minimum``, ``pattern``. Anything else
in the schema is ignored (documentation only)."""

from __future__ import annotations

import re

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        node = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def problems(spec: dict, schema: dict, value, path: str = "$") -> list[str]:
    schema = resolve(spec, schema)
    out: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return [f"{path}: {value!r} is not of type {types}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        out.append(f"{path}: {value} < {schema['minimum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        out.append(f"{path}: {value!r} does not match {schema['pattern']}")
    evaluated: set[str] = set()
    for sub in schema.get("allOf", []):
        sub = resolve(spec, sub)
        out += problems(spec, sub, value, path)
        evaluated |= set(sub.get("properties", {}))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        evaluated |= set(props)
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{path}: missing {name!r}")
        for name, item in value.items():
            if name in props:
                out += problems(spec, props[name], item, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: unexpected {name!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += problems(spec, schema["additionalProperties"], item, f"{path}.{name}")
        if schema.get("unevaluatedProperties") is False:
            out += [f"{path}: unexpected {n!r}" for n in value if n not in evaluated]
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += problems(spec, schema["items"], item, f"{path}[{i}]")
    return out
