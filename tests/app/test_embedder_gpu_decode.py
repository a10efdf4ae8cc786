"""The Embedder's device-decode path (``gpu_decode``), run on the CPU through the same code: which
path a photo takes, embeddings that match the CPU path's, and the same answers for bad files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

import encoder.gpu_decode as gpu_decode
from app.embedder import Embedder
from encoder import ImageDecodeError, load_encoder
from tests.conftest import image_bytes
from tests.encoder.test_gpu_decode import jpeg_with_orientation

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


def embed_all(embedder: Embedder, datas: list[bytes]) -> list[np.ndarray | ImageDecodeError]:
    """Every photo's embedding or decode error, all submitted at once (one batch)."""

    async def main() -> list[np.ndarray | BaseException]:
        embedder.start()
        try:
            return await asyncio.gather(*(embedder.embed_bytes(d) for d in datas), return_exceptions=True)
        finally:
            await embedder.close()

    results = asyncio.run(main())
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, ImageDecodeError):
            raise r
    return results  # type: ignore[return-value]


def bad_body(data: bytes) -> bytes:
    """A JPEG whose header reads fine and whose pixel data the decoder refuses."""
    bad = bytearray(data)
    bad[200:-2] = b"\x00" * (len(bad) - 202)
    return bytes(bad)


PHOTOS = {
    "jpeg": jpeg_with_orientation(1, 1),
    "jpeg turned": jpeg_with_orientation(2, 6),
    "png": image_bytes(3, "PNG"),
    "jpeg truncated": image_bytes(4)[:600],
    "jpeg bad body": bad_body(image_bytes(5)),
    "not an image": b"hello, this is text" * 10,
}
PHOTOS_INDEX = {name: i for i, name in enumerate(PHOTOS)}


def test_the_device_path_gives_the_cpu_paths_answers(tiny_encoder_path: Path) -> None:
    model = load_encoder(tiny_encoder_path)
    datas = list(PHOTOS.values())
    on_cpu = embed_all(Embedder(model, max_batch_size=16, max_wait_ms=200, gpu_decode=False), datas)
    on_device = embed_all(Embedder(model, max_batch_size=16, max_wait_ms=200, gpu_decode=True), datas)
    for name, a, b in zip(PHOTOS, on_cpu, on_device, strict=True):
        if isinstance(a, ImageDecodeError):
            assert isinstance(b, ImageDecodeError), name
            assert (b.kind, str(b)) == (a.kind, str(a)), name  # the same answer, word for word
        else:
            assert isinstance(b, np.ndarray), name
            assert float(a @ b) > 0.99, name  # two resizes of one photo, nearly the same vector
    assert isinstance(on_cpu[PHOTOS_INDEX["jpeg truncated"]], ImageDecodeError)  # the cases are real
    assert isinstance(on_cpu[PHOTOS_INDEX["not an image"]], ImageDecodeError)


def test_jpegs_go_to_the_device_decoder_in_one_batch(
    tiny_encoder_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = gpu_decode.decode_jpegs

    def counting(plans, device):  # type: ignore[no-untyped-def]
        calls.append(len(plans))
        return real(plans, device)

    monkeypatch.setattr("app.embedder.decode_jpegs", counting)
    model = load_encoder(tiny_encoder_path)
    embed_all(Embedder(model, max_batch_size=16, max_wait_ms=500, gpu_decode=True), list(PHOTOS.values()))
    # the three JPEGs whose header is fine, in one call (truncated, PNG and text went the CPU way)
    assert sum(calls) == 3 and max(calls) >= 2
    calls.clear()
    embed_all(Embedder(model, max_batch_size=16, max_wait_ms=500, gpu_decode=False), list(PHOTOS.values()))
    assert sum(calls) == 0  # off: the CPU path alone


def test_on_by_default_only_on_cuda(tiny_encoder_path: Path) -> None:
    assert Embedder(load_encoder(tiny_encoder_path)).gpu_decode is False  # this encoder is on the CPU
    if torch.cuda.is_available():
        assert Embedder(load_encoder(tiny_encoder_path, map_location="cuda")).gpu_decode is True
