"""The options of ``lookalike train``: every flag with its default and what it is for.

The defaults are the measured recipe (``training.recipe``, docs/QUALITY.md); ``training.train``
fills in the ones that depend on the data (epochs, frozen blocks) and runs it.
"""

from __future__ import annotations

import argparse

from encoder.backbones import BACKBONES
from encoder.pooling import POOLINGS
from training.optim import OPTIMIZERS
from training.recipe import EMBED_IMAGE_SIZE, IMAGES_PER_RUN, MAX_EPOCHS, MIN_EPOCHS

METHODS = ("simclr", "moco", "byol")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the image encoder self-supervised on unlabeled photos.", add_help=add_help
    )
    p.add_argument(
        "--data",
        required=True,
        action="append",
        help="folder of photos (recursive), CSV or Parquet with image_path columns; repeat it to add "
        "sources, e.g. the catalog and unlabeled shoppers' photos",
    )
    p.add_argument("--out", default="encoder.pt", help="where to write the exported encoder")
    p.add_argument("--output-dir", default=None, help="checkpoint every epoch and log.jsonl here")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="continue from a checkpoint (default: OUTPUT_DIR/checkpoint.pt)",
    )
    p.add_argument("--method", default="simclr", choices=METHODS)
    p.add_argument("--arch", default="efficientnet_lite0", choices=sorted(BACKBONES))
    p.add_argument(
        "--init",
        default="imagenet",
        help="'imagenet' (default: the shipped weights, efficientnet_lite0), a backbone state dict, "
        "or 'random' (research only: a shop's photos are too few to learn vision from scratch)",
    )
    p.add_argument("--image-size", type=int, default=160, help="training crop size (px)")
    p.add_argument(
        "--embed-image-size",
        type=int,
        default=None,
        help=f"image size the exported encoder embeds at (default: {EMBED_IMAGE_SIZE} with a "
        "pretrained start, else --image-size)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"passes over the photos (default: enough to see about {IMAGES_PER_RUN:,} photos, "
        f"{MIN_EPOCHS}..{MAX_EPOCHS})",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per step and process (2 views each)")
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=1e-4, help="backbone learning rate")
    p.add_argument("--head-lr", type=float, default=1e-3, help="learning rate of heads and predictor")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD / LARS momentum")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="not applied to norms and biases")
    p.add_argument("--warmup-fraction", type=float, default=0.1, help="share of steps warming up linearly")
    p.add_argument("--temperature", type=float, default=0.2, help="SimCLR / MoCo temperature τ")
    p.add_argument("--proj-hidden-dim", type=int, default=2048)
    p.add_argument("--proj-dim", type=int, default=None, help="projection size (128; BYOL 256)")
    p.add_argument("--moco-queue", type=int, default=4096, help="MoCo negatives kept (< catalog size)")
    p.add_argument("--moco-momentum", type=float, default=0.99)
    p.add_argument("--byol-momentum", type=float, default=0.99, help="BYOL base EMA momentum (-> 1)")
    p.add_argument(
        "--freeze-blocks",
        type=int,
        default=None,
        help="freeze the stem and the first N blocks (default: 10 of efficientnet_lite0's 16, the "
        "same share of other archs, with a pretrained start; 0 from random)",
    )
    p.add_argument(
        "--bn-eval",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the backbone's BatchNorm statistics fixed (default: on with a pretrained start)",
    )
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPUs (CUDA + torchrun)")
    p.add_argument(
        "--precise-bn-images",
        type=int,
        default=2048,
        help="recompute BatchNorm statistics on this many images before export (0: off; "
        "skipped with --bn-eval)",
    )
    p.add_argument("--crop-min-scale", type=float, default=0.2)
    p.add_argument("--jitter", type=float, default=0.4, help="brightness/contrast/saturation jitter")
    p.add_argument(
        "--hue",
        type=float,
        default=0.0,
        help="hue jitter; 0 (default) keeps colours, which measured better on clothing",
    )
    p.add_argument("--grayscale-p", type=float, default=0.2)
    p.add_argument("--blur-p", type=float, default=0.5)
    # The retrieval head of the exported encoder (saved in encoder.pt, used by build and serve)
    p.add_argument("--pooling", default="avg", choices=POOLINGS, help="global pooling of the feature map")
    p.add_argument("--gem-p", type=float, default=3.0, help="GeM exponent (with --pooling gem)")
    p.add_argument("--flip", action="store_true", help="embed a photo and its mirror image, averaged")
    p.add_argument(
        "--scales", type=_scales, default=(1.0,), help="embed at these input scales, averaged (e.g. 1,0.707)"
    )
    p.add_argument(
        "--whiten", action="store_true", help="learn PCA whitening on the training photos after training"
    )
    p.add_argument("--whiten-dim", type=int, default=0, help="dimensions the whitening keeps (0: all)")
    p.add_argument(
        "--whiten-shrinkage", type=float, default=0.5, help="0: full whitening .. 1: centre and rotate only"
    )
    shopper = p.add_argument_group(
        "shopper-photo augmentations and regulariser",
        "make a catalog photo look like a shopper's phone photo; each flag is the probability of "
        "one augmentation (default: the preset's, training/shopper.py, training/background.py)",
    )
    shopper.add_argument(
        "--shopper-augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="all of them at once (default: on, the probabilities of training/augment.py "
        "SHOPPER_PRESET; measured in docs/QUALITY.md); an explicit flag below overrides its share",
    )
    for name, what in [
        ("background", "replace a packshot's plain background by a crop of another training photo"),
        ("perspective", "perspective warp (product seen at an angle)"),
        ("rotation", "small rotation (a few degrees, corners filled by mirroring)"),
        ("occlusion", "a hand-like blob in front of the product"),
        ("glare", "a soft bright highlight"),
        ("white-balance", "colour cast (red/blue gains)"),
        ("exposure", "under- or over-exposure"),
        ("motion-blur", "camera shake (line kernel at a random angle)"),
        ("jpeg", "JPEG recompression at a low quality"),
    ]:
        shopper.add_argument(f"--{name}-p", type=float, default=None, metavar="P", help=what)
    shopper.add_argument(
        "--koleo-weight",
        type=float,
        default=0.0,
        help="weight of the KoLeo regulariser of SSCD on the embeddings of both views "
        "(training/koleo.py; 0: off; SSCD used 30)",
    )
    p.add_argument("--val", default=None, help="labeled folder/CSV for the kNN top-1 monitor")
    p.add_argument("--knn-every", type=int, default=1, help="epochs between kNN monitor runs")
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-amp", action="store_true", help="full precision on CUDA too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (for exact resume)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _scales(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales are comma-separated numbers, not {text!r}") from None
