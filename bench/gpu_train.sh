#!/usr/bin/env bash
# A short SimCLR run on a GPU with AMP: images/s and peak GPU memory, for a lent GPU machine.
# Needs torch + torchvision there; the two efficientnet wheels (and tqdm, if missing) travel as
# wheels in .whl/ (see docs/BENCHMARKS.md for the download command). Run from the repo root:
#   bash bench/gpu_train.sh            # writes $OUT/gpu_train.jsonl when OUT is set
set -euo pipefail
source bench/gpu_env.sh
IMAGES=${IMAGES:-/tmp/gpu-train-images}
N=${N:-4096}
OUT=${OUT:-/tmp/gpu-train-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 - "$IMAGES" "$N" <<'PY'
import sys, pathlib, numpy as np
from PIL import Image
root, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
root.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(n):  # 400x533 JPEGs like the clothing photos: smooth colour fields with noise
    base = rng.integers(0, 256, (5, 4, 3)).astype(np.uint8)
    img = Image.fromarray(base).resize((400, 533), Image.BICUBIC)
    noise = rng.integers(-20, 20, (533, 400, 3))
    Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8)).save(root / f"{i:05d}.jpg", quality=90)
print(f"made {n} images in {root}")
PY
for bs in 128 256; do
  python3 -m training.train --data "$IMAGES" --method simclr --arch efficientnet_lite0 --init imagenet \
    --image-size 224 --batch-size "$bs" --epochs 1 --workers "$(( $(nproc) - 2 ))" --no-progress \
    --output-dir "$OUT/bs$bs" --out "$OUT/encoder-bs$bs.pt"
  tail -n 1 "$OUT/bs$bs/log.jsonl" | sed "s/^{/{\"batch_size\": $bs, /" | tee -a "$OUT/gpu_train.jsonl"
done
