#!/usr/bin/env bash
# Retrieval quality of each self-supervised method on clothing-small, from ImageNet init and from
# scratch, next to the three baselines. Queries: test/ (372), gallery: train/ (3,068), hit = same class.
#   bash bench/ssl_quality.sh            # about an hour on 2 CPU cores
# Encoders, training logs and one JSON line per evaluation go to $OUT (default runs/ssl-quality).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/clothing-small}
OUT=${OUT:-runs/ssl-quality}
L=${L:-.venv/bin/lookalike}
mkdir -p "$OUT"
common="--data $DATA/train --batch-size 64 --workers 2 --seed 0 --no-progress --hue 0.05"
pretrained="--arch efficientnet_lite0 --init imagenet --freeze-blocks 12 --bn-eval --image-size 160
  --embed-image-size 224 --epochs 1 --lr 3e-5 --head-lr 1e-3"
scratch="--arch efficientnet_lite0 --init random --image-size 128 --embed-image-size 128 --epochs 2
  --lr 1e-3 --head-lr 1e-3"
evaluate() {  # evaluate NAME [eval args...]
  local name=$1; shift
  $L eval --queries "$DATA/test" --gallery "$DATA/train" --workers 1 --json "$@" 2>/dev/null \
    | sed "s/^{/{\"run\": \"$name\", /" | tee -a "$OUT/results.jsonl"
}
train() {  # train NAME [train args...]
  local name=$1; shift
  /usr/bin/time -f "$name: %e s" -a -o "$OUT/times.txt" \
    $L train $common "$@" --out "$OUT/$name.pt" --output-dir "$OUT/$name" > "$OUT/$name.log" 2>&1
  evaluate "$name" --encoder "$OUT/$name.pt"
}
train simclr-imagenet --method simclr $pretrained
train simclr-imagenet-hue0 --method simclr $pretrained --hue 0  # the later --hue wins
train moco-imagenet --method moco --moco-queue 1024 $pretrained
train byol-imagenet --method byol $pretrained
evaluate baselines --baseline pretrained --baseline colour-hist --baseline random --arch efficientnet_lite0
train simclr-scratch --method simclr $scratch
train moco-scratch --method moco --moco-queue 1024 $scratch
train byol-scratch --method byol $scratch
cat "$OUT/times.txt"
