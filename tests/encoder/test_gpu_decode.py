"""JPEG decoding on the encoder's device (``encoder.gpu_decode``), run here through the same code
with ``device="cpu"``: which uploads get a plan, the batch decode that isolates a bad file, the
EXIF transposes, and inputs that match the CPU path's. One test runs on CUDA when there is one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from encoder import Crop, EncoderConfig, Preprocessor
from encoder.gpu_decode import GPU_MAX_PIXELS, GpuInput, JpegPlan, decode_jpegs, plan_jpeg, upright
from tests.conftest import image_bytes, make_image

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")
CONFIG = EncoderConfig(arch="mobilenet_v3_small", image_size=64)


def jpeg_with_orientation(seed: int, orientation: int, size: tuple[int, int] = (96, 128)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    make_image(seed, size).save(buf, format="JPEG", quality=95, exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_is_pillows_exif_transpose(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    got = upright(torch.from_numpy(pixels).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert np.array_equal(got, expected)


def test_only_plain_jpegs_get_a_plan() -> None:
    jpeg = image_bytes(1)
    assert plan_jpeg(jpeg, 40_000_000) == JpegPlan(jpeg, 1, None)
    assert plan_jpeg(jpeg_with_orientation(1, 6), 40_000_000).orientation == 6  # type: ignore[union-attr]
    assert plan_jpeg(image_bytes(1, "PNG"), 40_000_000) is None  # another format: the CPU path
    assert plan_jpeg(jpeg[: len(jpeg) // 2], 40_000_000) is None  # truncated
    assert plan_jpeg(jpeg, 96 * 128 - 1) is None  # over the limit: the CPU path refuses it
    thin = io.BytesIO()
    Image.new("RGB", (400, 10)).save(thin, format="JPEG")
    assert plan_jpeg(thin.getvalue(), 40_000_000) is None  # a shape the CPU path refuses
    assert plan_jpeg(jpeg, 40_000_000, Crop(0, 0, 0.05, 0.05)) is None  # a crop too small
    assert plan_jpeg(b"\xff\xd8\xff" + b"\x00" * 64 + b"\xff\xd9", 40_000_000) is None  # no header
    assert GPU_MAX_PIXELS < 40_000_000  # the largest photos stay on the CPU's reduced-scale decode


def test_a_bad_file_fails_only_itself_in_a_batch() -> None:
    good = [image_bytes(seed) for seed in (1, 2)]
    bad = bytearray(good[0])
    bad[200:-2] = b"\x00" * (len(bad) - 202)  # a JPEG header, pixel data that cannot decode
    plans = [JpegPlan(good[0], 1), JpegPlan(bytes(bad), 1), JpegPlan(good[1], 1)]
    decoded = decode_jpegs(plans, "cpu")
    assert decoded[1] is None
    alone = decode_jpegs([plans[2]], "cpu")[0]
    assert decoded[2] is not None and alone is not None and torch.equal(decoded[2], alone)
    assert decoded[0] is not None and decoded[0].shape == (3, 128, 96) and decoded[0].dtype == torch.uint8


@pytest.mark.parametrize(
    ("orientation", "crop"), [(1, None), (3, None), (6, None), (8, Crop(0.1, 0.2, 0.6, 0.5))]
)
def test_device_input_matches_the_cpu_path(orientation: int, crop: Crop | None) -> None:
    data = jpeg_with_orientation(3, orientation)
    reference = Preprocessor(CONFIG)(data, crop)  # (3, 64, 64)
    to_input = GpuInput(CONFIG.image_size, CONFIG.mean, CONFIG.std)
    plan = plan_jpeg(data, 40_000_000, crop)
    assert plan is not None
    pixels = decode_jpegs([plan], "cpu")[0]
    assert pixels is not None
    got = to_input(pixels, plan)
    assert got.shape == reference.shape and got.dtype == torch.float32
    close = (got - reference).abs().mean().item()
    # the same photo the wrong way up is far off: the transposes and the crop are what make it close
    wrong = to_input(pixels, JpegPlan(data, 1 if orientation != 1 else 3, crop))
    assert close < 0.05 < (wrong - reference).abs().mean().item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_decode_matches_the_cpu_decode() -> None:
    datas = [jpeg_with_orientation(seed, 1 + seed % 8) for seed in range(6)]
    plans = [plan_jpeg(d, 40_000_000) for d in datas]
    assert all(p is not None for p in plans)
    on_cpu = decode_jpegs(plans, "cpu")  # type: ignore[arg-type]
    on_gpu = decode_jpegs(plans, "cuda")  # type: ignore[arg-type]
    to_input = GpuInput(CONFIG.image_size, CONFIG.mean, CONFIG.std)
    for plan, a, b in zip(plans, on_cpu, on_gpu, strict=True):
        assert a is not None and b is not None and b.device.type == "cuda"
        assert plan is not None
        diff = (to_input(a, plan) - to_input(b, plan).cpu()).abs().mean().item()
        assert diff < 0.02  # two JPEG decoders' rounding, no more
