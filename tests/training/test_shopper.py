"""Shopper-photo augmentations on real photos (the demo catalog), the background replacement,
the view pipeline with them off and on, and training runs with every new option."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder import list_image_files, load_encoder
from training.augment import SHOPPER_PRESET, AugmentConfig, shopper_probabilities, view_transform
from training.background import BackgroundReplacement, RandomPhotoCrop, plain_background_mask
from training.data import ImageListDataset
from training.shopper import (
    ExposureShift,
    Glare,
    HandOcclusion,
    JpegRecompression,
    MotionBlur,
    RandomPerspectiveWarp,
    SmallRotation,
    WhiteBalanceShift,
)
from training.train import get_args_parser, main

DEMO = Path(__file__).resolve().parents[2] / "demo" / "catalog"
# Photos of clothing in a room: no plain border (checked below).
CLUTTERED = ["dress/DRESS-001.jpg", "shoes/SHOES-003.jpg", "pants/PANTS-001.jpg"]

AUGMENTATIONS: dict[str, Callable[[float], Callable[[Image.Image], Image.Image]]] = {
    "perspective": lambda p: RandomPerspectiveWarp(p),
    "rotation": lambda p: SmallRotation(p),
    "occlusion": lambda p: HandOcclusion(p),
    "glare": lambda p: Glare(p),
    "white balance": lambda p: WhiteBalanceShift(p),
    "exposure": lambda p: ExposureShift(p),
    "motion blur": lambda p: MotionBlur(p),
    "jpeg": lambda p: JpegRecompression(p),
}


def demo_photo(name: str) -> Image.Image:
    with Image.open(DEMO / name) as image:
        return image.convert("RGB")


def packshot(photo: Image.Image, size: tuple[int, int] = (400, 480)) -> Image.Image:
    """The photo shrunk onto a white canvas, as a product photographed on white."""
    canvas = Image.new("RGB", size, (255, 255, 255))
    product = photo.resize((size[0] // 2, size[1] // 2))
    canvas.paste(product, (size[0] // 4, size[1] // 4))
    return canvas


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
@pytest.mark.parametrize("photo", CLUTTERED[:2])
def test_each_augmentation_changes_a_real_photo_and_keeps_its_size(name: str, photo: str) -> None:
    torch.manual_seed(0)
    image = demo_photo(photo)
    out = AUGMENTATIONS[name](1.0)(image)
    assert out.size == image.size and out.mode == "RGB"
    changed = np.abs(pixels(out) - pixels(image)).max(axis=2) > 8  # (h, w)
    assert changed.mean() > 0.005, f"{name} left {photo} nearly as it was"
    assert pixels(image).shape == pixels(demo_photo(photo)).shape  # the input is not modified
    assert np.array_equal(pixels(image), pixels(demo_photo(photo)))


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_each_augmentation_is_a_no_op_with_p_0(name: str) -> None:
    image = demo_photo(CLUTTERED[0])
    augment = AUGMENTATIONS[name](0.0)
    assert all(augment(image) is image for _ in range(5))
    with pytest.raises(ValueError, match="p must be in"):
        AUGMENTATIONS[name](1.5)


def test_geometric_augmentations_fill_the_corners_from_the_photo_not_black() -> None:
    torch.manual_seed(0)
    image = demo_photo(CLUTTERED[0])
    for augment in (SmallRotation(1.0, degrees=10), RandomPerspectiveWarp(1.0, distortion=0.5)):
        out = pixels(augment(image))
        corners = np.concatenate([out[:4, :4], out[:4, -4:], out[-4:, :4], out[-4:, -4:]])
        assert corners.max() > 30, f"{type(augment).__name__} left black corners"


def test_photometric_augmentations_do_what_they_say() -> None:
    torch.manual_seed(0)
    image = demo_photo(CLUTTERED[1])
    before = pixels(image).astype(np.float64)
    # exposure: one gain for every channel -> the channel means move the same way
    means = [pixels(ExposureShift(1.0, stops=1.0)(image)).mean(axis=(0, 1)) for _ in range(6)]
    assert all(
        (np.sign(m - before.mean(axis=(0, 1))) == np.sign(m[0] - before[..., 0].mean())).all() for m in means
    )
    # white balance: green is kept, red or blue moves
    out = pixels(WhiteBalanceShift(1.0, shift=0.3)(image))
    assert np.abs(out[..., 1] - before[..., 1]).max() <= 1
    assert np.abs(out[..., [0, 2]] - before[..., [0, 2]]).mean() > 1
    # glare: only ever brighter
    assert (pixels(Glare(1.0)(image)) >= before - 1).all()
    # motion blur: less high-frequency energy
    blurred = pixels(MotionBlur(1.0, length=(9, 9))(image)).astype(np.float64)
    assert np.abs(np.diff(blurred, axis=1)).mean() + np.abs(np.diff(blurred, axis=0)).mean() < (
        np.abs(np.diff(before, axis=1)).mean() + np.abs(np.diff(before, axis=0)).mean()
    )


def test_occlusion_covers_about_its_share_with_one_colour_blob() -> None:
    torch.manual_seed(0)
    image = demo_photo(CLUTTERED[0])
    shares = []
    for _ in range(10):
        changed = np.abs(pixels(HandOcclusion(1.0, scale=(0.1, 0.1))(image)) - pixels(image)).max(axis=2) > 8
        shares.append(changed.mean())
    assert 0.03 < float(np.median(shares)) < 0.15  # 10% drawn, part of it may fall outside the frame


def test_plain_border_is_found_on_a_packshot_and_not_on_room_photos() -> None:
    for name in CLUTTERED:
        assert plain_background_mask(demo_photo(name)) is None, name
    mask = plain_background_mask(packshot(demo_photo(CLUTTERED[0])))
    assert mask is not None
    background = np.asarray(mask) > 0
    h, w = background.shape
    assert background[: h // 5].all() and background[-(h // 5) :].all()  # the white margins
    assert not background[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].any()  # the product


def test_background_replacement_changes_the_border_of_a_packshot_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    paths = list_image_files(DEMO)
    replace = BackgroundReplacement(RandomPhotoCrop(paths), p=1.0, scale=(1.0, 1.0))
    for name in CLUTTERED:  # no plain border: returned as it is
        image = demo_photo(name)
        assert replace(image) is image
    shot = packshot(demo_photo(CLUTTERED[0]))
    out = replace(shot)
    assert out.size == shot.size and out.mode == "RGB"
    before, after = pixels(shot), pixels(out)
    h, w = before.shape[:2]
    border = np.ones((h, w), dtype=bool)
    border[h // 10 : -h // 10, w // 10 : -w // 10] = False
    assert (np.abs(after - before).max(axis=2)[border] > 30).mean() > 0.5, "the white border was kept"
    assert (after[border] < 230).any(axis=1).mean() > 0.5  # something other than white is there now
    # With p=0 nothing happens, not even on a packshot.
    assert BackgroundReplacement(RandomPhotoCrop(paths), p=0.0)(shot) is shot


def test_background_replacement_shrinks_the_product_to_its_scale() -> None:
    torch.manual_seed(1)
    photo = demo_photo(CLUTTERED[1]).resize((200, 240))
    shot = packshot(photo, (400, 480))  # the product: 200 x 240 of 400 x 480
    grey = Image.new("RGB", (400, 480), (90, 90, 90))
    # scale 0.5 of the largest size that fits (2x) = the product's own size, a quarter of the photo
    out = BackgroundReplacement(lambda w, h: grey.resize((w, h)), p=1.0, scale=(0.5, 0.5))(shot)
    not_grey = (np.abs(pixels(out) - 90).max(axis=2) > 3).mean()
    assert 0.2 < not_grey < 0.3
    assert (pixels(out) > 240).all(axis=2).mean() < 0.01  # none of the white background is left


def test_random_photo_crop_reads_another_photo_at_the_requested_size(tmp_path: Path) -> None:
    sampler = RandomPhotoCrop(list_image_files(DEMO)[:5])
    crop = sampler(123, 77)
    assert crop.size == (123, 77) and crop.mode == "RGB"
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        RandomPhotoCrop([tmp_path / "broken.jpg"])(10, 10)
    with pytest.raises(ValueError):
        RandomPhotoCrop([])


def test_view_transform_is_unchanged_with_the_shopper_augmentations_off() -> None:
    image = demo_photo(CLUTTERED[0])
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    plain = view_transform(AugmentConfig(image_size=64), mean, std)
    assert len(plain.transforms) == 6  # crop, flip, jitter, grayscale, blur, to tensor
    everything = AugmentConfig(image_size=64, **shopper_probabilities({}, preset=True))
    with pytest.raises(ValueError, match="background_paths"):
        view_transform(everything, mean, std)
    full = view_transform(everything, mean, std, background_paths=list_image_files(DEMO)[:10])
    assert len(full.transforms) == 6 + len(SHOPPER_PRESET)
    torch.manual_seed(0)
    for _ in range(5):
        view = full(packshot(image))
        assert view.shape == (3, 64, 64) and torch.isfinite(view).all()


def test_shopper_probabilities_preset_and_overrides() -> None:
    assert set(shopper_probabilities({}, preset=False).values()) == {0.0}
    assert shopper_probabilities({}, preset=True) == SHOPPER_PRESET
    chosen = shopper_probabilities({"glare_p": 0.0, "jpeg_p": 0.9, "rotation_p": None}, preset=True)
    assert chosen["glare_p"] == 0.0 and chosen["jpeg_p"] == 0.9
    assert chosen["rotation_p"] == SHOPPER_PRESET["rotation_p"]
    with pytest.raises(ValueError, match="unknown"):
        shopper_probabilities({"sparkle_p": 1.0}, preset=False)


def test_dataset_concatenates_sources(photo_folder: Path, tmp_path: Path) -> None:
    dataset = ImageListDataset([photo_folder, DEMO / "hat"], lambda image: image, limit=4)
    assert len(dataset) == 8 and dataset.paths[4].parent.name == "hat"
    assert len(ImageListDataset(photo_folder, lambda image: image)) == 12  # one source as before
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        ImageListDataset([photo_folder, tmp_path / "empty"], lambda image: image)


TINY = [
    "--init",
    "random",
    "--arch",
    "mobilenet_v3_small",
    "--image-size",
    "64",
    "--batch-size",
    "6",
    "--workers",
    "0",
    "--no-progress",
    "--proj-hidden-dim",
    "64",
    "--proj-dim",
    "16",
    "--epochs",
    "1",
    "--precise-bn-images",
    "12",
]


def test_train_with_every_shopper_option_on(photo_folder: Path, tmp_path: Path) -> None:
    """Every new flag at once, on packshots (white margins) and photos from another source (the
    KoLeo term of MoCo and BYOL is checked in test_koleo.py)."""
    shots = tmp_path / "packshots"
    shots.mkdir()
    for i, name in enumerate(CLUTTERED):
        packshot(demo_photo(name), (160, 200)).save(shots / f"shot-{i}.jpg")
    flags = [f"--{n}-p" for n in ("background", "perspective", "rotation", "occlusion", "glare")]
    flags += [f"--{n}-p" for n in ("white-balance", "exposure", "motion-blur", "jpeg")]
    out = tmp_path / "encoder.pt"
    args = ["--data", str(shots), "--data", str(photo_folder), "--out", str(out), *TINY]
    args += ["--koleo-weight", "1.0", "--shopper-augment"]
    parsed = get_args_parser().parse_args([*args, *(x for f in flags for x in (f, "1.0"))])
    assert parsed.data == [str(shots), str(photo_folder)]
    main(parsed)
    assert load_encoder(out).config.arch == "mobilenet_v3_small"


def test_train_with_one_data_flag_still_works(photo_folder: Path, tmp_path: Path) -> None:
    parsed = get_args_parser().parse_args(
        ["--data", str(photo_folder), "--out", str(tmp_path / "e.pt"), *TINY]
    )
    assert parsed.data == [str(photo_folder)] and parsed.koleo_weight == 0.0 and parsed.shopper_augment
    assert parsed.background_p is None
    main(parsed)
    assert (tmp_path / "e.pt").exists()
