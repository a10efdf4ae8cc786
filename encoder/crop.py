"""The region of a photo a shopper marked, as fractions of its size."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Crop:
    """A region of a photo as fractions of its size: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        if not (0 <= self.x < 1 and 0 <= self.y < 1 and 0 < self.w <= 1 and 0 < self.h <= 1):
            raise ValueError("crop x, y must be in [0, 1) and w, h in (0, 1]")
        if self.x + self.w > 1 + 1e-6 or self.y + self.h > 1 + 1e-6:
            raise ValueError("the crop reaches outside the photo (x + w or y + h over 1)")

    @classmethod
    def parse(cls, text: str) -> Crop:
        """From ``"x,y,w,h"``; ``ValueError`` with a plain message otherwise."""
        parts = text.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(f"crop must be four numbers x,y,w,h (fractions of the photo), not {text!r}")
        return cls(*values)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The pixel box (left, top, right, bottom) in an image of ``width`` x ``height``, >= 1 px."""
        left, top = int(self.x * width), int(self.y * height)
        right = min(width, max(left + 1, round((self.x + self.w) * width)))
        bottom = min(height, max(top + 1, round((self.y + self.h) * height)))
        return left, top, right, bottom
