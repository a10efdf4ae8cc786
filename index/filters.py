"""Metadata filters at search time: category, price range, attribute equality, as SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from encoder.attributes import check_filter_attributes

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class SearchFilter:
    """Products must match every given condition; an empty filter matches everything."""

    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    attributes: dict[str, Scalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_filter_attributes(self.attributes)  # InvalidAttributes, a ValueError
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price is above max_price")

    @property
    def is_empty(self) -> bool:
        return (
            self.category is None
            and self.min_price is None
            and self.max_price is None
            and not self.attributes
        )

    def where(self, alias: str = "p", dialect: str = "sqlite") -> tuple[str, list[Any]]:
        """A SQL condition on the products table (as ``alias``) and its parameters, for the
        ``sqlite`` or ``postgresql`` dialect (``Database.dialect``)."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.category is not None:
            clauses.append(f"{alias}.category = ?")
            params.append(self.category)
        if self.min_price is not None:
            clauses.append(f"{alias}.price >= ?")
            params.append(self.min_price)
        if self.max_price is not None:
            clauses.append(f"{alias}.price <= ?")
            params.append(self.max_price)
        for key, value in sorted(self.attributes.items()):
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
