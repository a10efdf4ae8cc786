#!/usr/bin/env bash
# GPU FAISS checks and timings for a lent GPU machine (torch there, no faiss): see bench/gpu_index.py.
# The faiss-gpu wheel travels in .whl/ (its CUDA 12 libraries come with torch there). Once, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl faiss-gpu-cu12
# Then, from the repo root there:  bash bench/gpu_index.sh   (N, DIM, QUERIES override the sizes)
set -euo pipefail
source bench/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 bench/gpu_index.py --n "${N:-1000000}" --dim "${DIM:-512}" --queries "${QUERIES:-1000}"
