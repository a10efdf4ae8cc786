"""What a build did, in one dataclass that the single-process and the Ray build both return."""

from __future__ import annotations

from dataclasses import dataclass, field

from index.records import NearDuplicate


@dataclass
class BuildReport:
    """What one ``embed_catalog`` call did: images stored, seconds spent, items skipped and why."""

    images: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    near_duplicates: list[NearDuplicate] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0
