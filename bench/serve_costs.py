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
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = (
        load_encoder(args.encoder)
        if args.encoder
        else Encoder(EncoderConfig(arch=args.arch, image_size=args.image_size)).eval()
    )
    preprocess = Preprocessor(encoder.config)
    photos = [p.read_bytes() for p in sorted(Path(args.queries).rglob("*.jpg"))[:64]]
    for photo in photos[:8]:  # warm-up: the first decodes pay for one-off initialisation
        preprocess(photo)
    pixels = torch.stack([preprocess(p) for p in photos])  # (64, 3, S, S)
    for _ in range(3):
        encoder.embed(pixels[:1])
        encoder.embed(pixels[:32])
    decode, one, batched = [], [], []
    for _ in range(args.repeats):  # the least disturbed of the repeats counts (shared machine)
        started = time.perf_counter()
        for photo in photos:
            preprocess(photo)
        decode.append((time.perf_counter() - started) / len(photos) * 1000)
        started = time.perf_counter()
        for i in range(len(photos)):
            encoder.embed(pixels[i : i + 1])
        one.append((time.perf_counter() - started) / len(photos) * 1000)
        started = time.perf_counter()
        for start in (0, 32):
            encoder.embed(pixels[start : start + 32])
        batched.append((time.perf_counter() - started) / 64 * 1000)
    decode_ms, one_ms, batched_ms = min(decode), min(one), min(batched)
    cfg = encoder.config
    print(f"{cfg.arch} at {cfg.image_size} px, {torch.get_num_threads()} torch threads, ms per image:")
    print(
        f"decode + preprocess {decode_ms:.1f}, forward at batch 1 {one_ms:.1f}, at batch 32 {batched_ms:.2f}"
    )
    bound = (decode_ms + one_ms) / (decode_ms + batched_ms)
    print(f"most batching can give, decoding on the same cores: {bound:.2f}x (best of {args.repeats} runs)")


if __name__ == "__main__":
    main()
