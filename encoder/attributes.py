"""Product attributes and attribute filters: bounded JSON objects that stay valid JSON.

Every way attributes come in (HTTP forms and bodies, the batch manifest, a catalog, the store
API) is checked here, once. Why each rule:

- Python's ``json`` reads and writes ``NaN`` and ``Infinity``, which JSON has not: a row holding
  one breaks every attribute-filtered query on SQLite < 3.42, and PostgreSQL refuses it.
- ``json.loads`` recurses once per nesting level: ``"[" * 200000`` raises ``RecursionError``
  instead of a decode error, so nesting is measured before parsing.
- SQLite's JSON functions hold 64-bit integers; a longer one would compare as a float.
- Each attribute filter becomes one SQL condition: 1,200 of them overflow SQLite's expression
  tree; and a key or text longer than any stored one can never match.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_CHARS = 64 * 1024  # one product's attributes, as JSON text
MAX_DEPTH = 8  # the object itself is depth 1; {"size": {"eu": 38}} is depth 2
MAX_ENTRIES = 1_000  # keys and list items, at every level together
MAX_KEY_CHARS = 200
MAX_TEXT_CHARS = 10_000  # one text value
MAX_FILTER_KEYS = 32  # attribute conditions in one search
MAX_INT = 2**63 - 1  # integers are 64-bit (SQLite's JSON)


class InvalidAttributes(ValueError):
    """Attributes (or an attribute filter) that the catalog does not accept; the message says why
    without echoing the input."""


def parse_attributes(text: str, what: str = "attributes") -> dict[str, Any]:
    """``text`` as a JSON object within the limits; ``InvalidAttributes`` otherwise (never a
    ``RecursionError``, however deep the input)."""
    if len(text) > MAX_JSON_CHARS:
        raise InvalidAttributes(
            f"{what} must be at most {MAX_JSON_CHARS} characters of JSON, not {len(text)}"
        )
    if _nesting_exceeds(text, MAX_DEPTH):
        raise InvalidAttributes(f"{what} may nest objects and lists at most {MAX_DEPTH} deep")
    try:
        value = json.loads(text, parse_constant=_not_json, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise InvalidAttributes(f"{what} must be a JSON object: {exc.msg} at character {exc.pos}") from None
    except InvalidAttributes as exc:  # from the hooks below
        raise InvalidAttributes(f"{what}: {exc}") from None
    return check_attributes(value, what)


def check_attributes(value: Any, what: str = "attributes") -> dict[str, Any]:
    """``value`` itself when it is a JSON object within the limits: text keys, values that are
    text, finite numbers, true/false, null, lists or objects; ``InvalidAttributes`` otherwise."""
    attributes_json(value, what)
    return value  # type: ignore[no-any-return]


def attributes_json(value: Any, what: str = "attributes") -> str:
    """The JSON text to store for ``value`` (checked as ``check_attributes`` does)."""
    if not isinstance(value, dict):
        raise InvalidAttributes(f'{what} must be a JSON object, e.g. {{"colour": "red"}}')
    _check_tree(value, what)
    text = json.dumps(value, allow_nan=False)
    if len(text) > MAX_JSON_CHARS:
        raise InvalidAttributes(
            f"{what} must be at most {MAX_JSON_CHARS} characters of JSON, not {len(text)}"
        )
    return text


def check_filter_attributes(attributes: dict[str, Any]) -> None:
    """An attribute filter: at most ``MAX_FILTER_KEYS`` non-empty keys, each equal to a scalar
    (text, a finite number, true/false or null) within the length limits."""
    if len(attributes) > MAX_FILTER_KEYS:
        raise InvalidAttributes(f"at most {MAX_FILTER_KEYS} attribute filters, not {len(attributes)}")
    for key, value in attributes.items():
        if not isinstance(key, str) or not key or not isinstance(value, str | int | float | bool | None):
            raise InvalidAttributes(
                f"attribute filter {_short(key)} must be a non-empty name = a scalar value"
            )
        _check_key(key, "attribute filter")
        _check_scalar(value, f"attribute filter {_short(key)}")


def _check_tree(root: dict[str, Any], what: str) -> None:
    """Walk without recursion: entries, depth, keys and leaves against the limits."""
    entries = 0
    stack: list[tuple[Any, int, str]] = [(root, 1, what)]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, dict | list | tuple):
            if depth > MAX_DEPTH:
                raise InvalidAttributes(f"{what} may nest objects and lists at most {MAX_DEPTH} deep")
            entries += len(node)
            if entries > MAX_ENTRIES:
                raise InvalidAttributes(f"{what} may hold at most {MAX_ENTRIES} keys and list items")
            if isinstance(node, dict):
                for key, child in node.items():
                    if not isinstance(key, str):
                        raise InvalidAttributes(f"{what}: keys must be text, not {type(key).__name__}")
                    _check_key(key, what)
                    stack.append((child, depth + 1, f"{what} {_short(key)}"))
            else:
                stack.extend((child, depth + 1, where) for child in node)
        else:
            _check_scalar(node, where)


def _check_key(key: str, what: str) -> None:
    if len(key) > MAX_KEY_CHARS:
        raise InvalidAttributes(
            f"{what}: a key is {len(key)} characters long, at most {MAX_KEY_CHARS} allowed"
        )


def _check_scalar(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_INT - 1 <= value <= MAX_INT:
            raise InvalidAttributes(f"{where}: an integer beyond 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAttributes(
                f"{where}: {value} is not a JSON number (NaN and infinity are not allowed)"
            )
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise InvalidAttributes(
                f"{where}: a text of {len(value)} characters, at most {MAX_TEXT_CHARS} allowed"
            )
        return
    raise InvalidAttributes(
        f"{where}: a {type(value).__name__} is not a JSON value "
        "(text, number, true/false, null, list or object)"
    )


def _not_json(constant: str) -> Any:
    """``json.loads``' hook for ``NaN``, ``Infinity`` and ``-Infinity``: refuse them."""
    raise InvalidAttributes(f"{constant} is not a JSON number (NaN and infinity are not allowed)")


def _int(digits: str) -> int:
    """``json.loads``' hook for integers: no conversion of thousands of digits (64 bits at most)."""
    if len(digits) > 20:
        raise InvalidAttributes("an integer beyond 64 bits")
    return int(digits)


def _nesting_exceeds(text: str, limit: int) -> bool:
    """Whether ``text`` opens more than ``limit`` objects or lists inside each other (brackets in
    strings do not count); one pass, no recursion."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _short(key: object, limit: int = 40) -> str:
    """``key`` for a message: its repr, cut to ``limit`` characters."""
    text = repr(key)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"
