"""Retrieval evaluation of an encoder: queries against a labeled gallery, hit = same label.

    lookalike eval --encoder encoder.pt --queries test/ --gallery catalog.csv

``--encoder imagenet`` and ``--encoder random`` evaluate the off-the-shelf ImageNet weights
and a randomly initialised network of ``--arch``, the baselines a fine-tune must beat.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from encoder import (
    Encoder,
    eval_transform,
    load_encoder,
    pick_device,
)
from encoder.backbones import BACKBONES
from training.colour_hist import ColourHistogramEmbedder
from training.data import ImageListDataset
from training.init import build_encoder
from training.metrics import retrieval_report


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure retrieval quality of an encoder.", add_help=add_help
    )
    parser.add_argument(
        "--encoder",
        default=None,
        help="encoder.pt, or 'imagenet' / 'random' with --arch; optional when a --baseline is given",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        choices=["random", "pretrained", "colour-hist"],
        help="also report a baseline (repeatable): 'random' = randomly initialised --arch, "
        "'pretrained' = ImageNet efficientnet_lite0, 'colour-hist' = HSV colour histogram",
    )
    parser.add_argument("--arch", default="efficientnet_lite0", choices=sorted(BACKBONES))
    parser.add_argument("--image-size", type=int, default=224, help="for 'imagenet' / 'random'")
    parser.add_argument("--queries", required=True, help="folder (label = parent folder) or CSV")
    parser.add_argument("--gallery", required=True, help="folder (label = parent folder) or CSV")
    parser.add_argument("--label-column", default="category", help="label column of a CSV")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'random' encoder")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    return parser


def resolve_encoder(name: str, arch: str, image_size: int, seed: int) -> Encoder:
    """encoder.pt path, or a baseline: 'imagenet' (shipped weights) or 'random'."""
    if name in ("imagenet", "random"):
        torch.manual_seed(seed)
        return build_encoder(arch, name, image_size).eval()
    return load_encoder(name)


def embed_labeled(
    encoder: Encoder, source: str, label_column: str, batch_size: int, workers: int
) -> tuple[np.ndarray, list[str]]:
    """Embed every image of ``source``: returns ((N, D) float32 embeddings, N labels)."""
    cfg = encoder.config
    dataset = ImageListDataset(source, eval_transform(cfg.image_size, cfg.mean, cfg.std), label_column)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    chunks = [encoder.embed(x).cpu().numpy() for x, _ in tqdm(loader, desc=f"embedding {source}")]
    labels = [dataset.classes[t] for t in dataset.targets]
    return np.concatenate(chunks), labels


def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Evaluate ``--encoder`` and each ``--baseline``; returns {name: retrieval report}.

    name = the ``--encoder`` value, or "baseline:random" / "baseline:pretrained" /
    "baseline:colour-hist". One printed line or block per entry (one JSON line with ``--json``).
    """
    baselines = list(dict.fromkeys(getattr(args, "baseline", None) or []))  # dedupe, keep order
    if not args.encoder and not baselines:
        get_args_parser().error("give --encoder, at least one --baseline, or both")
    device = pick_device(args.device)

    def embedder(baseline: str | None) -> Callable[[str], tuple[np.ndarray, list[str]]]:
        """A baseline's name, or None for --encoder -> embed(source) = ((N, D) float32, N labels).

        Models are built one at a time, when their turn comes.
        """
        if baseline == "colour-hist":
            hist = ColourHistogramEmbedder()
            return lambda source: hist.embed_source(source, args.label_column)
        if baseline == "random":
            encoder = resolve_encoder("random", args.arch, args.image_size, args.seed)
        elif baseline == "pretrained":
            encoder = resolve_encoder("imagenet", "efficientnet_lite0", args.image_size, args.seed)
        elif baseline is None:
            encoder = resolve_encoder(args.encoder, args.arch, args.image_size, args.seed)
        else:
            raise ValueError(f"unknown baseline {baseline!r}")
        encoder = encoder.to(device)
        return lambda source: embed_labeled(encoder, source, args.label_column, args.batch_size, args.workers)

    runs: list[tuple[str, str | None]] = [(args.encoder, None)] if args.encoder else []
    runs += [(f"baseline:{b}", b) for b in baselines]
    reports: dict[str, dict[str, float]] = {}
    for name, baseline in runs:
        embed = embedder(baseline)
        started = time.perf_counter()
        q, q_labels = embed(args.queries)
        g, g_labels = (q, q_labels) if args.gallery == args.queries else embed(args.gallery)
        report = retrieval_report(q, np.array(q_labels), g, np.array(g_labels))
        seconds = time.perf_counter() - started
        reports[name] = report
        if args.json:
            print(json.dumps({"encoder": name, "queries": len(q), "gallery": len(g), **report}))
        else:
            print(f"{name}: {len(q)} queries vs {len(g)} gallery images ({seconds:.0f} s)")
            for metric, value in report.items():
                print(f"  {metric:>10}: {value:.3f}")
    return reports


if __name__ == "__main__":
    main(get_args_parser().parse_args())
