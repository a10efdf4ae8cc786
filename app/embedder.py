"""Turning uploaded photos into embeddings: decode and preprocess in threads, forward in batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from app.batching import MicroBatcher, Overloaded
from encoder import Crop, Encoder, Preprocessor


class Embedder:
    """``await embed_bytes(data)`` -> (D,) float32 unit vector; concurrent calls share forwards."""

    def __init__(
        self,
        encoder: Encoder,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_image_pixels: int = 40_000_000,
        on_batch: Callable[[int], None] | None = None,
        max_queue: int = 0,
        timeout_s: float | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.encoder = encoder.eval()
        self.preprocess = Preprocessor(encoder.config, max_image_pixels)
        self.batcher: MicroBatcher[torch.Tensor, np.ndarray] = MicroBatcher(
            self._forward, max_batch_size, max_wait_ms, on_batch, max_queue
        )

    def _forward(self, pixels: list[torch.Tensor]) -> list[np.ndarray]:
        batch = torch.stack(pixels)  # (B, 3, S, S)
        return list(self.encoder.embed(batch).cpu().numpy())  # B x (D,)

    async def embed_bytes(self, data: bytes, crop: Crop | None = None) -> np.ndarray:
        """Raises ``ImageDecodeError`` for bytes that are not a usable image, ``Overloaded`` when
        the queue is full or the answer takes longer than ``timeout_s``."""
        if self.batcher.full:  # refuse before spending a decode on it
            raise Overloaded("the encoder queue is full")
        pixels = await run_in_threadpool(self.preprocess, data, crop)
        return await self.batcher.submit(pixels, self.timeout_s)

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
