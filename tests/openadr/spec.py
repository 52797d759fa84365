"""Checks HTTP answers against the OpenADR 3.0.1 OpenAPI definition next to this file.

`Recorder` hooks `requests` so that every answer any client in the process receives (the
`openadr3-client` sessions included) is kept; `check_all` then validates each body against
the schema the definition gives for its path, method and status. A status the definition does
not list for an operation (3.0.1 lists no 401) must still be the spec's `problem`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

SPEC = yaml.safe_load((Path(__file__).parent / "openadr3-3.0.1.yaml").read_text())


def _drop_discriminators(node) -> None:
    """The definition's discriminators (`objectType`) have no mapping, so a validator looks the
    value up as a schema name (`#/components/schemas/EVENT`) and fails on every object; they
    are dropped, and the `oneOf`/`anyOf` they annotate still apply."""
    if isinstance(node, dict):
        node.pop("discriminator", None)
        for value in node.values():
            _drop_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _drop_discriminators(value)


_drop_discriminators(SPEC)
COMPONENTS = SPEC["components"]
# The one tolerated difference from 3.0.1: a subscription written with 3.0.0's operation names
# (HTTP verbs; openadr3-client 2.4 still models them) is served as it was written.
_operations = COMPONENTS["schemas"]["subscription"]["properties"]["objectOperations"]["items"]["properties"]["operations"]["items"]
_operations["enum"] = [*_operations["enum"], "GET", "POST", "PUT"]


def _template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")


PATHS = [(template, _template_regex(template), item) for template, item in SPEC["paths"].items()]


def schema_for(path: str, method: str, status: int) -> tuple[str, dict]:
    """The operation (`METHOD template`) and the response schema of an answer."""
    for template, regex, item in PATHS:
        if regex.match(path) and method.lower() not in item and status >= 400:
            # A method the path does not take (405): refused with a problem all the same.
            return f"{method.upper()} {template}", {"$ref": "#/components/schemas/problem"}
        if regex.match(path) and method.lower() in item:
            operation = item[method.lower()]
            response = operation["responses"].get(str(status))
            name = f"{method.upper()} {template}"
            if response is None:
                if status < 400:
                    raise AssertionError(f"{name}: status {status} is not one the definition lists")
                return name, {"$ref": "#/components/schemas/problem"}
            content = response.get("content", {}).get("application/json")
            return name, content["schema"] if content else {}
    raise AssertionError(f"{method} {path}: no such operation in the definition")


def validate(schema: dict, body) -> None:
    """Raises if `body` does not satisfy `schema` (with the definition's components)."""
    OAS30Validator({**schema, "components": COMPONENTS}, format_checker=oas30_format_checker).validate(body)


def validate_named(name: str, body) -> None:
    """`body` against one of the definition's schemas, e.g. `notification`."""
    validate({"$ref": f"#/components/schemas/{name}"}, body)


class Recorder:
    """Keeps every (method, path, status, body) `requests` receives under `base`."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.answers: list[tuple[str, str, int, object]] = []
        original = requests.Session.send

        def send(session, request, **kwargs):
            response = original(session, request, **kwargs)
            url = request.url.split("?")[0]
            if url.startswith(self.base):
                try:
                    body = response.json()
                except ValueError:
                    body = response.text
                self.answers.append((request.method, url[len(self.base):], response.status_code, body))
            return response

        requests.Session.send = send

    def check_all(self) -> dict[str, int]:
        """Validates every recorded answer; returns how many were checked per operation and status."""
        counts: dict[str, int] = {}
        for method, path, status, body in self.answers:
            if path == "/auth/token" and status in (400, 401):
                name, schema = "POST /auth/token", {"$ref": "#/components/schemas/authError"}
            else:
                name, schema = schema_for(path, method, status)
            try:
                validate(schema, body)
            except Exception as e:  # noqa: BLE001
                raise AssertionError(f"{name} -> {status}: the answer does not match the definition: {e}\n{json.dumps(body)[:2000]}") from None
            if status >= 400 and path != "/auth/token":
                # Problems carry at least what a client needs to act.
                assert body.get("status") == status and body.get("type") and body.get("detail"), f"{name} -> {status}: {body}"
            key = f"{name} {status}"
            counts[key] = counts.get(key, 0) + 1
        return counts
