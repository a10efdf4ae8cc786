"""A colour-histogram baseline for retrieval: a joint HSV histogram per image, no learning.

Each image becomes the square root of its normalised (hue, saturation, value) histogram (the
Hellinger mapping). The result has unit L2 norm, and the inner product of two of them is the
Bhattacharyya coefficient of the two histograms, so the vectors plug straight into the same
inner-product ranking as the learned embeddings. An encoder that cannot beat this baseline has
learned little more than colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from encoder import open_image_file
from encoder.catalog import read_image_list


def colour_histogram(
    image: Image.Image, bins: tuple[int, int, int] = (8, 4, 4), size: int = 128
) -> np.ndarray:
    """Hellinger-mapped joint HSV histogram of ``image``: (prod(bins),) float32, unit L2 norm.

    The image is first resized so that its longer side is ``size`` pixels (keeps it fast and
    makes the histogram independent of resolution). ``bins`` = (hue, saturation, value) bins,
    each in 1..256; channels are split into equal-width bins over 0..255. Entry
    ``(h * bins[1] + s) * bins[2] + v`` holds sqrt(share of pixels in bin (h, s, v)), so the
    inner product of two histograms is their Bhattacharyya coefficient (1 for equal histograms).
    """
    if len(bins) != 3 or not all(1 <= b <= 256 for b in bins):
        raise ValueError(f"bins must be three integers in 1..256, got {bins}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size != rgb.size:
        rgb = rgb.resize(new_size, Image.Resampling.BILINEAR)
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.int64).reshape(-1, 3)  # (P, 3), values 0..255
    n_bins = np.asarray(bins, dtype=np.int64)
    idx = (hsv * n_bins) >> 8  # (P, 3) bin per channel, in 0..bins[c] - 1
    flat = (idx[:, 0] * n_bins[1] + idx[:, 1]) * n_bins[2] + idx[:, 2]  # (P,)
    counts = np.bincount(flat, minlength=int(n_bins.prod())).astype(np.float64)  # (prod(bins),)
    return np.sqrt(counts / counts.sum()).astype(np.float32)


class ColourHistogramEmbedder:
    """Embeds a labeled folder or CSV with ``colour_histogram``, like ``evaluate.embed_labeled``."""

    def __init__(self, bins: tuple[int, int, int] = (8, 4, 4), size: int = 128) -> None:
        self.bins = bins
        self.size = size

    @property
    def embed_dim(self) -> int:
        """Length D of every histogram: prod(bins)."""
        return int(np.prod(self.bins))

    def embed_image(self, image: Image.Image) -> np.ndarray:
        """One image -> (D,) float32, unit L2 norm."""
        return colour_histogram(image, self.bins, self.size)

    def embed_source(
        self, source: str | Path, label_column: str = "category"
    ) -> tuple[np.ndarray, list[str]]:
        """Every image of a folder (label = parent folder) or CSV -> ((N, D) float32, N labels).

        Raises ``ValueError`` for an empty source or an image that cannot be decoded (with its path).
        """
        items = read_image_list(source, label_column)
        if not items:
            raise ValueError(f"no images found in {source}")
        rows = np.empty((len(items), self.embed_dim), dtype=np.float32)  # (N, D)
        for i, (path, _) in enumerate(tqdm(items, desc=f"colour histograms {source}")):
            try:
                image = open_image_file(path)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from exc
            rows[i] = self.embed_image(image)
        return rows, [label for _, label in items]
