# syntax=docker/dockerfile:1
# lookalike: the search API and storefront (`lookalike serve`), two targets from one file.
#   docker build --target cuda -t lookalike:cuda .   NVIDIA CUDA runtime, torch with CUDA, faiss-gpu
#   docker build --target cpu  -t lookalike:cpu  .   python slim, CPU-only torch, faiss-cpu
# Both run as the unprivileged user `lookalike` (uid 10001) and keep their state in two volumes:
#   /artifacts  encoders (LOOKALIKE_ENCODER_PATH=/artifacts/encoder.pt: the demo encoder at first)
#   /data       product stores (LOOKALIKE_STORE_DIR=/data/store: the demo catalog at first)
# A fresh volume starts with the image's demo files, so `docker compose up` serves a storefront.
# See docs/OPERATIONS.md for training, building a store and switching to it.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04

# ---------------------------------------------------------------- the project as one wheel
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY encoder ./encoder
COPY training ./training
COPY index ./index
COPY ops ./ops
COPY app ./app
COPY lookalike ./lookalike
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------- CPU: torch from the CPU-only index
FROM ${PYTHON_IMAGE} AS cpu-venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv \
    && pip install --index-url "${TORCH_CPU_INDEX}" torch==2.14.1 torchvision==0.29.1
COPY --from=wheel /wheels /wheels
ARG PSYCOPG_VERSION=3.3.9
RUN pip install /wheels/lookalike-*.whl "psycopg[binary]==${PSYCOPG_VERSION}"

# ---------------------------------------------------------------- the demo store, built once
FROM cpu-venv AS demo-store
WORKDIR /demo
COPY demo/catalog.csv demo/encoder.pt ./
COPY demo/catalog ./catalog
RUN lookalike build --catalog catalog.csv --encoder encoder.pt --store /data/store --workers 0 --no-progress

# ---------------------------------------------------------------- CUDA: python from Ubuntu, torch's CUDA wheels
FROM ${CUDA_IMAGE} AS cuda-base
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*

FROM cuda-base AS cuda-venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv && pip install torch==2.14.1 torchvision==0.29.1
COPY --from=wheel /wheels /wheels
# The gpu extra (faiss-gpu) and faiss-cpu both install the `faiss` module: faiss-cpu goes first,
# so removing it cannot delete files faiss-gpu wrote. psycopg: the postgres extra.
ARG FAISS_GPU_VERSION=1.15.1
ARG PSYCOPG_VERSION=3.3.9
RUN pip install /wheels/lookalike-*.whl "psycopg[binary]==${PSYCOPG_VERSION}" \
    && pip uninstall -y faiss-cpu \
    && pip install faiss-gpu==${FAISS_GPU_VERSION}

# ---------------------------------------------------------------- the CUDA image
FROM cuda-base AS cuda
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    LOOKALIKE_ENCODER_PATH=/artifacts/encoder.pt LOOKALIKE_STORE_DIR=/data/store \
    LOOKALIKE_HOST=0.0.0.0 LOOKALIKE_PORT=8000 LOOKALIKE_DEVICE=auto
RUN groupadd --system --gid 10001 lookalike \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /srv/lookalike lookalike \
    && mkdir -p /artifacts /data \
    && chown 10001:10001 /artifacts /data
COPY --from=cuda-venv /opt/venv /opt/venv
COPY --from=demo-store --chown=10001:10001 /data/store /data/store
COPY --chown=10001:10001 demo/encoder.pt /artifacts/encoder.pt
COPY demo/LICENSE /srv/lookalike/DEMO-LICENSE
WORKDIR /srv/lookalike
USER 10001:10001
VOLUME ["/artifacts", "/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LOOKALIKE_PORT', '8000'), timeout=4)"]
CMD ["lookalike", "serve"]

# ---------------------------------------------------------------- the CPU image (the last: a plain build)
FROM ${PYTHON_IMAGE} AS cpu
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    LOOKALIKE_ENCODER_PATH=/artifacts/encoder.pt LOOKALIKE_STORE_DIR=/data/store \
    LOOKALIKE_HOST=0.0.0.0 LOOKALIKE_PORT=8000 LOOKALIKE_DEVICE=cpu
RUN groupadd --system --gid 10001 lookalike \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /srv/lookalike lookalike \
    && mkdir -p /artifacts /data \
    && chown 10001:10001 /artifacts /data
COPY --from=cpu-venv /opt/venv /opt/venv
COPY --from=demo-store --chown=10001:10001 /data/store /data/store
COPY --chown=10001:10001 demo/encoder.pt /artifacts/encoder.pt
COPY demo/LICENSE /srv/lookalike/DEMO-LICENSE
WORKDIR /srv/lookalike
USER 10001:10001
VOLUME ["/artifacts", "/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LOOKALIKE_PORT', '8000'), timeout=4)"]
CMD ["lookalike", "serve"]
