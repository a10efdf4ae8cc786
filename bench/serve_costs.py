"""Where a search's CPU time goes: decoding vs the forward at batch 1 and at batch 32.

    .venv/bin/python bench/serve_costs.py --arch mobilenet_v3_small --image-size 128

Per query photo (clothing-small test JPEGs): decode + preprocess, forward alone, forward in a
batch of 32. Batching shrinks only the forward, so with decoding on the same cores the speed-up of
batched over unbatched serving is at most (decode + forward@1) / (decode + forward@32).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from encoder import Encoder, EncoderConfig, Preprocessor, load_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default=None, help="an encoder.pt; default: a random --arch one")
    parser.add_argument("--arch", default="mobilenet_v3_small")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--queries", default="../shared/data/clothing-small/test")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = (
        load_encoder(args.encoder)
        if args.encoder
        else Encoder(EncoderConfig(arch=args.arch, image_size=args.image_size)).eval()
    )
    preprocess = Preprocessor(encoder.config)
    photos = [p.read_bytes() for p in sorted(Path(args.queries).rglob("*.jpg"))[:64]]
    started = time.perf_counter()
    pixels = torch.stack([preprocess(p) for p in photos])  # (64, 3, S, S)
    decode = (time.perf_counter() - started) / len(photos) * 1000
    for _ in range(3):  # warm-up
        encoder.embed(pixels[:1])
        encoder.embed(pixels[:32])
    started = time.perf_counter()
    for i in range(len(photos)):
        encoder.embed(pixels[i : i + 1])
    one = (time.perf_counter() - started) / len(photos) * 1000
    started = time.perf_counter()
    for start in (0, 32):
        encoder.embed(pixels[start : start + 32])
    batched = (time.perf_counter() - started) / 64 * 1000
    cfg = encoder.config
    print(f"{cfg.arch} at {cfg.image_size} px, {torch.get_num_threads()} torch threads, ms per image:")
    print(
        f"decode + preprocess {decode:.1f}, forward at batch 1 {one:.1f}, forward at batch 32 {batched:.2f}"
    )
    print(
        f"most batching can give with decoding on the same cores: {(decode + one) / (decode + batched):.2f}x"
    )


if __name__ == "__main__":
    main()
