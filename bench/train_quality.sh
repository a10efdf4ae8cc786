#!/usr/bin/env bash
# Train one recipe on the smvs-dvd split and measure it beside the off-the-shelf encoder:
#   bash bench/train_quality.sh NAME [lookalike train flags...]
#   SETS=smvs-split,clothing bash bench/train_quality.sh default          # the plain defaults
#   bash bench/train_quality.sh strong --freeze-blocks 10 --epochs 20
# Training sees, without labels, the 100 catalog scans and the 200 phone photos of products
# 001-050 (bench/instance_quality.py writes the split); evaluation asks with the phone photos of
# 051-100 against all 100 scans. Encoder, log and results go to $OUT/NAME (default runs/quality).
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
OUT=${OUT:-runs/quality}
SETS=${SETS:-smvs-split}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT/$name"
$PY bench/instance_quality.py --write-split "$OUT/split" > /dev/null
started=$(date +%s)
$PY -m lookalike train --data "$OUT/split/train.csv" --out "$OUT/$name/encoder.pt" --no-progress \
  --seed 0 "$@" > "$OUT/$name/train.log" 2>&1
echo "$name: trained in $(( $(date +%s) - started )) s: $*" | tee -a "$OUT/times.txt"
$PY bench/instance_quality.py --encoder "$OUT/$name/encoder.pt" --sets "$SETS" \
  ${NO_BASELINE:+--no-baseline} 2>/dev/null | tee "$OUT/$name/results.md"
