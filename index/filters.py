"""Metadata filters at search time: category, price range, attribute equality, as SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class SearchFilter:
    """Products must match every given condition; an empty filter matches everything."""

    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    attributes: dict[str, Scalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.attributes.items():
            if not key or not isinstance(value, str | int | float | bool | None):
                raise ValueError(f"attribute filter {key!r} must be a non-empty name = a scalar value")
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

    def where(self, alias: str = "p") -> tuple[str, list[Any]]:
        """A SQL condition on the products table (as ``alias``) and its parameters."""
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
            path = "$." + json.dumps(key)  # a quoted JSON path: any key, no injection
            if value is None:
                clauses.append(f"json_type({alias}.attributes, ?) = 'null'")
                params.append(path)
            elif isinstance(value, bool):  # JSON true/false come back from json_extract as 1/0
                clauses.append(f"json_type({alias}.attributes, ?) = ?")
                params += [path, "true" if value else "false"]
            else:
                clauses.append(f"json_extract({alias}.attributes, ?) = ?")
                params += [path, value]
        return (" AND ".join(clauses) or "1"), params
