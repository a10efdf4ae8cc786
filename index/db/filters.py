"""A ``SearchFilter`` as SQL: one condition on the products table, for either dialect.

Attribute equality differs by dialect: SQLite walks the JSON with ``json_each`` (the key matched
exactly, whatever characters it holds, and the JSON type with the value), PostgreSQL asks the
``jsonb`` column whether it contains ``{key: value}`` (served by its GIN index).
"""

from __future__ import annotations

import json
from typing import Any

from index.filters import Scalar, SearchFilter


def filter_where(filter: SearchFilter, alias: str = "p", dialect: str = "sqlite") -> tuple[str, list[Any]]:
    """A SQL condition on the products table (as ``alias``) and its parameters, for the
    ``sqlite`` or ``postgresql`` dialect (``Database.dialect``)."""
    clauses: list[str] = []
    params: list[Any] = []
    if filter.category is not None:
        clauses.append(f"{alias}.category = ?")
        params.append(filter.category)
    if filter.min_price is not None:
        clauses.append(f"{alias}.price >= ?")
        params.append(filter.min_price)
    if filter.max_price is not None:
        clauses.append(f"{alias}.price <= ?")
        params.append(filter.max_price)
    for key, value in sorted(filter.attributes.items()):
        if dialect == "postgresql":
            clauses.append(_jsonb_equals(alias, key, value, params))
            continue
        # json_each matches the key exactly (any characters) and the JSON type with the value:
        # 1 never matches true, "1" never matches 1
        args: list[Any]
        if value is None:
            test, args = "type = 'null'", []
        elif isinstance(value, bool):
            test, args = "type = ?", ["true" if value else "false"]
        elif isinstance(value, str):
            test, args = "type = 'text' AND value = ?", [value]
        else:
            test, args = "type IN ('integer', 'real') AND value = ?", [value]
        clauses.append(f"EXISTS (SELECT 1 FROM json_each({alias}.attributes) WHERE key = ? AND {test})")
        params += [key, *args]
    return (" AND ".join(clauses) or "TRUE"), params


def _jsonb_equals(alias: str, key: str, value: Scalar, params: list[Any]) -> str:
    """PostgreSQL: ``{key: value} <@ attributes`` holds for a scalar exactly when the key is there
    with that JSON type and value (1 = 1.0, but 1 != true, "1" != 1), as json_each on SQLite."""
    params.append(json.dumps({key: value}, allow_nan=False))  # the filter's checks refused NaN
    return f"{alias}.attributes @> ?::jsonb"
