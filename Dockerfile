# lookalike: the search API + storefront. Serves the bundled demo catalog unless a store and
# an encoder are mounted and named with LOOKALIKE_ENCODER_PATH / LOOKALIKE_STORE_DIR.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/lookalike

# The heavy, rarely changing layer first.
RUN pip install torch==2.14.1 torchvision==0.29.1

COPY pyproject.toml README.md ./
COPY encoder ./encoder
COPY training ./training
COPY index ./index
COPY app ./app
COPY lookalike ./lookalike
RUN pip install .

COPY demo ./demo
RUN useradd --create-home --uid 10001 lookalike \
    && lookalike build --catalog demo/catalog.csv --encoder demo/encoder.pt --store /data/demo-store \
       --workers 0 --no-progress \
    && chown -R lookalike /data
USER lookalike

ENV LOOKALIKE_ENCODER_PATH=/srv/lookalike/demo/encoder.pt \
    LOOKALIKE_STORE_DIR=/data/demo-store \
    LOOKALIKE_HOST=0.0.0.0 \
    LOOKALIKE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
CMD ["lookalike", "serve"]
