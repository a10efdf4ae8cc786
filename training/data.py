"""Image datasets over catalogs (``encoder.catalog``): unlabeled for training, labeled for evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from encoder.catalog import read_image_list
from encoder.images import open_image_file


class ImageListDataset(Dataset):
    """Images from ``read_image_list`` of one source or several; item = (transform(image), label
    index).

    Several sources are concatenated in order (e.g. the catalog's packshots and unlabeled
    photos shoppers took); ``limit`` keeps the first N images of each. ``classes`` lists the
    labels in sorted order. A source without images, or a file that cannot be decoded, raises
    with its path, rather than silently training on less data.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        transform: Callable[[Any], Any],
        label_column: str = "category",
        limit: int | None = None,
    ) -> None:
        sources = [source] if isinstance(source, (str, Path)) else list(source)
        if not sources:
            raise ValueError("ImageListDataset needs at least one source")
        items: list[tuple[Path, str]] = []
        for one in sources:
            found = read_image_list(one, label_column)[:limit]
            if not found:
                raise ValueError(f"no images found in {one}")
            items += found
        self.paths = [p for p, _ in items]
        self.classes = sorted({label for _, label in items})
        index = {c: i for i, c in enumerate(self.classes)}
        self.targets = [index[label] for _, label in items]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        try:
            image = open_image_file(self.paths[i])
        except ValueError as exc:
            raise ValueError(f"{self.paths[i]}: {exc}") from exc
        return self.transform(image), self.targets[i]
