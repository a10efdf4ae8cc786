"""Retrieval evaluation of an encoder: queries against a labeled gallery, hit = same label.

    lookalike eval --encoder encoder.pt --queries test/ --gallery catalog.csv

``--encoder imagenet`` and ``--encoder random`` evaluate the off-the-shelf ImageNet weights
and a randomly initialised network of ``--arch``, the baselines a fine-tune must beat.
``--report page.html`` also writes one self-contained HTML page (``training.report``): the
metrics table, recall@k curves and the first entry's worst queries with their top results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from encoder import (
    Encoder,
    encoder_fingerprint,
    eval_transform,
    load_encoder,
    pick_device,
)
from encoder.backbones import BACKBONES
from encoder.catalog import read_image_list
from training.colour_hist import ColourHistogramEmbedder
from training.data import ImageListDataset
from training.init import build_encoder
from training.metrics import first_hit_rank, rank_gallery, recall_curve, retrieval_report
from training.report import render_report

REPORT_CURVE_K = 20  # the report's recall@k curves run over k = 1..20


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
    parser.add_argument("--queries", required=True, help="folder (label = parent folder), CSV or Parquet")
    parser.add_argument("--gallery", required=True, help="folder (label = parent folder), CSV or Parquet")
    parser.add_argument("--label-column", default="category", help="label column of a CSV")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'random' encoder")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    parser.add_argument(
        "--report",
        default=None,
        help="also write one self-contained HTML page here: metrics table, recall@k curves, "
        "and the worst queries of the first entry with their top 5 results",
    )
    parser.add_argument(
        "--report-queries", type=int, default=50, help="how many of the worst queries the page shows"
    )
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
    if args.report_queries < 0:
        get_args_parser().error(f"--report-queries must be >= 0, got {args.report_queries}")
    if args.report and not Path(args.report).resolve().parent.is_dir():
        raise FileNotFoundError(f"--report {args.report}: its folder does not exist")
    device = pick_device(args.device)

    def embedder(baseline: str | None) -> tuple[Callable[[str], tuple[np.ndarray, list[str]]], str]:
        """A baseline's name, or None for --encoder -> (embed, identity): embed(source) =
        ((N, D) float32, N labels); identity = the encoder's fingerprint, or what the baseline is
        (computed only for --report).

        Models are built one at a time, when their turn comes.
        """
        if baseline == "colour-hist":
            hist = ColourHistogramEmbedder()
            identity = f"HSV colour histogram, {'x'.join(map(str, hist.bins))} bins"
            return lambda source: hist.embed_source(source, args.label_column), identity
        if baseline == "random":
            encoder = resolve_encoder("random", args.arch, args.image_size, args.seed)
        elif baseline == "pretrained":
            encoder = resolve_encoder("imagenet", "efficientnet_lite0", args.image_size, args.seed)
        elif baseline is None:
            encoder = resolve_encoder(args.encoder, args.arch, args.image_size, args.seed)
        else:
            raise ValueError(f"unknown baseline {baseline!r}")
        encoder = encoder.to(device)
        identity = encoder_fingerprint(encoder) if args.report else ""
        return (
            lambda source: embed_labeled(encoder, source, args.label_column, args.batch_size, args.workers),
            identity,
        )

    runs: list[tuple[str, str | None]] = [(args.encoder, None)] if args.encoder else []
    runs += [(f"baseline:{b}", b) for b in baselines]
    reports: dict[str, dict[str, float]] = {}
    curves: dict[str, list[float]] = {}  # for --report: {name: recall@1..K}
    identities: dict[str, str] = {}
    # for --report, of the first entry: its name, (Q, K) rankings and (Q,) first-hit ranks
    shown: tuple[str, np.ndarray, np.ndarray] | None = None
    for name, baseline in runs:
        embed, identities[name] = embedder(baseline)
        started = time.perf_counter()
        q, q_labels = embed(args.queries)
        g, g_labels = (q, q_labels) if args.gallery == args.queries else embed(args.gallery)
        ql, gl = np.array(q_labels), np.array(g_labels)
        report = retrieval_report(q, ql, g, gl)
        seconds = time.perf_counter() - started
        reports[name] = report
        if args.report:
            ranked = rank_gallery(q, g, REPORT_CURVE_K)  # (Q, K)
            curves[name] = recall_curve(gl[ranked], ql).tolist()
            if shown is None:
                shown = (name, ranked, first_hit_rank(q, ql, g, gl))
        if args.json:
            print(json.dumps({"encoder": name, "queries": len(q), "gallery": len(g), **report}))
        else:
            print(f"{name}: {len(q)} queries vs {len(g)} gallery images ({seconds:.0f} s)")
            for metric, value in report.items():
                print(f"  {metric:>10}: {value:.3f}")
    if args.report and shown is not None:
        write_report(args, reports, curves, identities, *shown)
    return reports


def write_report(
    args: argparse.Namespace,
    reports: dict[str, dict[str, float]],
    curves: dict[str, list[float]],
    identities: dict[str, str],
    shown: str,
    ranked: np.ndarray,
    first_hit: np.ndarray,
) -> None:
    """Write ``--report``: every entry's metrics and curve, ``shown``'s worst queries.

    ranked: (Q, K) gallery indices of ``shown``, best first; first_hit: (Q,) from ``first_hit_rank``.
    """
    queries = read_image_list(args.queries, args.label_column)  # the order the embeddings have
    gallery = read_image_list(args.gallery, args.label_column)

    def describe(source: str, items: list[tuple[Path, str]]) -> str:
        label = "parent folder" if Path(source).is_dir() else f"column {args.label_column}"
        return f"{Path(source).resolve()} ({len(items)} images, label = {label})"

    details = {
        "queries": describe(args.queries, queries),
        "gallery": describe(args.gallery, gallery),
        "hit": "a gallery image with the query's label",
        "encoder": shown,
        "fingerprint": identities.get(shown, ""),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    page = render_report(
        reports=reports,
        curves=curves,
        shown=shown,
        ranked=ranked,
        first_hit=first_hit,
        query_paths=[p for p, _ in queries],
        query_labels=[label for _, label in queries],
        gallery_paths=[p for p, _ in gallery],
        gallery_labels=[label for _, label in gallery],
        details=details,
        identities=identities,
        max_queries=args.report_queries,
    )
    Path(args.report).write_text(page, encoding="utf-8")
    print(f"report: {args.report} ({len(page) // 1024} KB)", file=sys.stderr if args.json else sys.stdout)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
