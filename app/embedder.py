"""Turning uploaded photos into embeddings and search results: decode and preprocess in threads,
then one encoder forward and one FAISS search for all the requests that arrived together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from app.batching import MicroBatcher, Overloaded
from encoder import Crop, Encoder, ImageDecodeError, Preprocessor
from encoder.gpu_decode import GpuInput, JpegPlan, decode_jpegs, plan_jpeg
from encoder.local_features import LocalFeatures, extract_features
from index import ProductStore, SearchFilter, SearchHit

T = TypeVar("T")


@dataclass(frozen=True)
class _Job:
    pixels: torch.Tensor | None  # (3, S, S); None: ``jpeg`` is decoded with its batch on the GPU
    k: int = 0  # 0: embed only
    filter: SearchFilter | None = None
    jpeg: JpegPlan | None = None


@dataclass(frozen=True)
class Answer:
    vector: np.ndarray  # (D,) float32, L2-normalised
    hits: list[SearchHit] | None  # None when only the embedding was asked for


class Embedder:
    """``await embed_bytes(data)`` -> (D,) unit vector; ``await search_bytes(data, k)`` -> hits.

    Concurrent calls share one encoder forward, and the unfiltered searches among them one FAISS
    search over all their queries (FAISS answers a batch far faster than one query at a time).
    On CUDA the forward runs under autocast (bf16 where supported, else fp16) from pinned memory,
    and ``gpu_decode`` (by default: on CUDA) decodes the batch's JPEGs there too
    (``encoder.gpu_decode``); other photos, and those the GPU decoder refuses, go the CPU way.
    """

    def __init__(
        self,
        encoder: Encoder,
        store: ProductStore | None = None,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_image_pixels: int = 40_000_000,
        on_batch: Callable[[int], None] | None = None,
        max_queue: int = 0,
        timeout_s: float | None = None,
        decode_timeout_s: float | None = None,
        gpu_decode: bool | None = None,
    ) -> None:
        self.encoder = encoder.eval()
        self.store = store
        self.timeout_s = timeout_s
        self.decode_timeout_s = decode_timeout_s
        self.max_queue = max_queue  # images decoding + waiting for the encoder; 0: unbounded
        self.preprocess = Preprocessor(encoder.config, max_image_pixels)
        self.device = next(encoder.parameters()).device
        self.gpu_decode = self.device.type == "cuda" if gpu_decode is None else gpu_decode
        cfg = encoder.config
        self.gpu_input = GpuInput(cfg.image_size, cfg.mean, cfg.std)
        self.batcher: MicroBatcher[_Job, Answer] = MicroBatcher(
            self._run_batch, max_batch_size, max_wait_ms, on_batch, max_queue
        )
        # Decoding has its own pool, one thread per CPU: 32 concurrent uploads do not become 32
        # threads fighting over the cores (and the forward thread) for the GIL.
        self._decoders = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="decode")
        self._decoding = 0  # decode jobs submitted and not yet finished (queued or running)
        self._decoding_lock = threading.Lock()  # released from the decode threads

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def _inputs(self, jobs: list[_Job]) -> list[torch.Tensor | Exception]:
        """Each job's (3, S, S) input: decoded in the pool already, or its JPEG now, with the
        batch's others on the device; one the device refuses is decoded by the CPU path, which
        raises the answer's ``ImageDecodeError`` for a bad file."""
        plans = [j.jpeg for j in jobs if j.jpeg is not None]
        decoded = iter(decode_jpegs(plans, self.device))
        inputs: list[torch.Tensor | Exception] = []
        for job in jobs:
            if job.jpeg is None:
                assert job.pixels is not None
                inputs.append(job.pixels)
                continue
            pixels = next(decoded)
            try:
                if pixels is not None:
                    inputs.append(self.gpu_input(pixels, job.jpeg))
                else:
                    inputs.append(self.preprocess(job.jpeg.data, job.jpeg.crop))
            except ImageDecodeError as exc:
                inputs.append(exc)
        return inputs

    def _run_batch(self, jobs: list[_Job]) -> list[Answer | Exception]:
        """The inputs of ``jobs``, then ``_embed_and_search`` of those that have one (a photo that
        could not be decoded fails its own request only)."""
        inputs = self._inputs(jobs)
        ready = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor)]
        results: dict[int, Answer | Exception] = {
            i: x for i, x in enumerate(inputs) if isinstance(x, Exception)
        }
        if ready:
            tensors = [x for x in inputs if isinstance(x, torch.Tensor)]  # in the order of ready
            results.update(zip(ready, self._embed_and_search([jobs[i] for i in ready], tensors), strict=True))
        return [results[i] for i in range(len(jobs))]

    def _embed_and_search(self, jobs: list[_Job], inputs: list[torch.Tensor]) -> list[Answer | Exception]:
        """One forward for all ``jobs`` (its failure fails them all); then the searches, whose
        failures stay with the requests that asked for them (a filter is each request's own)."""
        if all(x.device.type == "cpu" for x in inputs):
            pixels = torch.stack(inputs)  # (B, 3, S, S)
            if self.device.type == "cuda":
                pixels = pixels.pin_memory().to(self.device, non_blocking=True)
        else:  # some were decoded on the device already
            pixels = torch.stack([x.to(self.device, non_blocking=True) for x in inputs])
        with self._autocast():
            vectors = self.encoder.embed(pixels).cpu().numpy()  # (B, D) float32
        hits: list[list[SearchHit] | Exception | None] = [None] * len(jobs)
        if self.store is not None:
            plain = [i for i, j in enumerate(jobs) if j.k and (j.filter is None or j.filter.is_empty)]
            if plain:
                try:
                    found = self.store.search(vectors[plain], max(jobs[i].k for i in plain))
                    for i, row in zip(plain, found, strict=True):
                        hits[i] = row[: jobs[i].k]
                except Exception as exc:  # shared by the unfiltered searches only
                    for i in plain:
                        hits[i] = exc
            for i, job in enumerate(jobs):
                if job.k and hits[i] is None:
                    try:
                        hits[i] = self.store.search(vectors[i : i + 1], job.k, job.filter)[0]
                    except Exception as exc:
                        hits[i] = exc
        return [h if isinstance(h, Exception) else Answer(v, h) for v, h in zip(vectors, hits, strict=True)]

    @property
    def in_flight(self) -> int:
        """Images being decoded or waiting to be, plus those waiting for the encoder."""
        return self._decoding + self.batcher.queue_depth

    def _decode_done(self, _: Future[Any] | None = None) -> None:
        with self._decoding_lock:
            self._decoding -= 1

    async def _decode(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the decode pool, admitted only while fewer than ``max_queue`` images are
        in flight (the pool's own queue is unbounded, so a burst of slow photos would otherwise
        pile up there unseen); ``Overloaded`` when full or when it takes over ``decode_timeout_s``.
        A decode that timed out still counts until its thread lets go of it."""
        with self._decoding_lock:
            if self.max_queue and self.in_flight >= self.max_queue:
                raise Overloaded(f"{self.in_flight} images are being decoded or waiting already")
            self._decoding += 1
        try:
            job = self._decoders.submit(fn, *args)
        except BaseException:  # the pool is shut down
            self._decode_done()
            raise
        job.add_done_callback(self._decode_done)
        try:  # a timed-out job that has not started is cancelled (wait_for cancels the wrapper)
            return await asyncio.wait_for(asyncio.wrap_future(job), self.decode_timeout_s)
        except asyncio.TimeoutError:
            raise Overloaded(f"the image was not decoded within {self.decode_timeout_s:g} s") from None

    def _plan_or_decode(self, data: bytes, crop: Crop | None) -> torch.Tensor | JpegPlan:
        """A JPEG's plan for the device, when it has one; else the CPU path's pixels."""
        return plan_jpeg(data, self.preprocess.max_pixels, crop) or self.preprocess(data, crop)

    async def _submit(self, data: bytes, crop: Crop | None, k: int, filter: SearchFilter | None) -> Answer:
        if not self.gpu_decode:
            pixels = await self._decode(self.preprocess, data, crop)
            return await self.batcher.submit(_Job(pixels, k, filter), self.timeout_s)
        prepared = await self._decode(self._plan_or_decode, data, crop)
        if isinstance(prepared, JpegPlan):
            return await self.batcher.submit(_Job(None, k, filter, prepared), self.timeout_s)
        return await self.batcher.submit(_Job(prepared, k, filter), self.timeout_s)

    async def embed_bytes(self, data: bytes, crop: Crop | None = None) -> np.ndarray:
        """Raises ``ImageDecodeError`` for bytes that are not a usable image, ``Overloaded`` when
        ``max_queue`` images are in flight already, the decode takes longer than
        ``decode_timeout_s`` or the answer longer than ``timeout_s``."""
        return (await self._submit(data, crop, 0, None)).vector

    async def search_bytes(
        self, data: bytes, k: int, filter: SearchFilter | None = None, crop: Crop | None = None
    ) -> tuple[np.ndarray, list[SearchHit]]:
        """(query vector (D,), top-``k`` hits) for a photo; the errors of ``embed_bytes``."""
        if self.store is None:
            raise RuntimeError("this Embedder has no store to search")
        answer = await self._submit(data, crop, k, filter)
        assert answer.hits is not None
        return answer.vector, answer.hits

    async def local_features(self, data: bytes, crop: Crop | None = None) -> LocalFeatures:
        """The photo's local features, for geometric re-ranking (in the decode pool; the errors of
        ``embed_bytes``)."""
        return await self._decode(extract_features, data, crop, self.preprocess.max_pixels)

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        self._decoders.shutdown(wait=True)
