"""The JSON schema of every command's ``--json`` output, one file per command
(``xnorfault/schemas/NAME.schema.json``, JSON Schema 2020-12), and the header each output
carries: ``schema`` (its name and layout version) and ``xnorfault_version``.

A program reading the output checks ``schema.name`` and ``schema.version`` before anything
else; a version changes when a field is renamed, removed or changes type (a new field keeps
it). :func:`validate` checks a document against its schema (needs ``jsonschema``, installed
with the ``dev`` extra; the tests validate every command's real output with it).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from xnorfault.errors import XnorfaultError

# command → layout version of its --json
SCHEMA_VERSIONS: dict[str, int] = {
    "train": 1,
    "export": 1,
    "inject": 1,
    "inspect": 1,
    "evaluate": 1,
    "optimize": 1,
    "deploy": 1,
    "plot": 1,
    "report": 1,
    "mram.table": 1,
    "mram.curve": 1,
    "mram.wer": 1,
    "mram.solve": 1,
    "mram.retention": 1,
    "mram.devices": 1,
    "mram.fit": 1,
}


def header(name: str) -> dict:
    """``{"schema": {"name": "xnorfault.NAME", "version": V}, "xnorfault_version": ...}``."""
    from xnorfault import __version__

    if name not in SCHEMA_VERSIONS:
        raise KeyError(f"no JSON schema named {name!r}")
    return {
        "schema": {"name": f"xnorfault.{name}", "version": SCHEMA_VERSIONS[name]},
        "xnorfault_version": __version__,
    }


def with_header(name: str, data: dict) -> dict:
    """``data`` after the header of schema ``name`` (its own keys keep their order)."""
    return {**header(name), **{k: v for k, v in data.items() if k not in ("schema",)}}


def complete(document, schema: dict):
    """``document`` with every field its ``schema`` declares and it lacks set to ``None``, in
    every object the schema describes (nested objects, the objects of arrays), so that a field
    never appears or vanishes with the values: it is null where it does not apply."""
    if isinstance(document, dict) and "properties" in schema:
        filled = {}
        for name, field in schema["properties"].items():
            filled[name] = complete(document[name], field) if name in document else None
        filled.update((k, v) for k, v in document.items() if k not in filled)
        return filled
    if isinstance(document, dict) and isinstance(schema.get("additionalProperties"), dict):
        inner = schema["additionalProperties"]
        return {k: complete(v, inner) for k, v in document.items()}
    if isinstance(document, list) and isinstance(schema.get("items"), dict):
        return [complete(item, schema["items"]) for item in document]
    return document


def document(name: str, data: dict) -> dict:
    """The ``--json`` document of command ``name``: the header, then ``data`` with every field
    of its schema present (:func:`complete`)."""
    return complete(with_header(name, data), load_schema(name))


@functools.cache
def load_schema(name: str) -> dict:
    """The JSON Schema of command ``name`` (``"evaluate"``, ``"mram.wer"``, …); read once, not
    to be changed."""
    if name not in SCHEMA_VERSIONS:
        raise XnorfaultError(
            f"no JSON schema named {name!r}: the schemas are {', '.join(SCHEMA_VERSIONS)}"
        )
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(document: dict, name: str | None = None) -> None:
    """Check ``document`` against its schema (``name``, else the one its header names):
    raises :class:`jsonschema.ValidationError` naming the first field that does not fit."""
    import jsonschema

    if name is None:
        named = (document.get("schema") or {}).get("name", "")
        name = named.removeprefix("xnorfault.")
    schema = load_schema(name)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
