"""Metadata filters at search time: category, price range, attribute equality.

A filter is a checked value; ``index.db.filters`` turns it into SQL for either dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
