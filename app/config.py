"""Service settings, read from ``LOOKALIKE_*`` environment variables (see the README's table)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", env_file=None, extra="ignore")

    encoder_path: Path = Field(Path("encoder.pt"), description="encoder.pt to embed with")
    store_dir: Path = Field(Path("store"), description="product store directory (created if missing)")
    database_url: str = Field(
        "",
        description="postgresql://... keeps the catalog in PostgreSQL, shared by replicas (empty: SQLite "
        "in store_dir); store_dir then holds this replica's FAISS snapshot and image cache",
    )
    reload_roots: str = Field(
        "",
        description="comma-separated directories POST /admin/reload may load an encoder and a store "
        "from (empty: the folders holding encoder_path and store_dir)",
    )
    sync_interval_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="with database_url or workers > 1: how often FAISS applies other processes' writes",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="processes `lookalike serve` runs on one port, each with its own encoder, batcher and "
        'FAISS copy (docs/OPERATIONS.md, "Workers")',
    )
    api_keys: str = Field("", description="comma-separated keys accepted in X-API-Key for writes")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    gpu_decode: bool = Field(
        True, description="with the encoder on CUDA: decode JPEG uploads there, a batch at a time"
    )
    max_batch_size: int = Field(32, ge=1, le=1024, description="most images per encoder forward")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="how long a request waits for others")
    max_queue: int = Field(256, ge=1, description="images that may wait for the encoder; more get 503")
    request_timeout_s: float = Field(10.0, gt=0, description="longest wait for an embedding; then 503")
    text_query_timeout_ms: float = Field(
        1000, gt=0, le=60_000, description="longest a text query (q) may run; then 503"
    )
    decode_timeout_s: float = Field(
        5.0, gt=0, description="longest wait for a photo to be decoded (queued or running); then 503"
    )
    limit_concurrency: int = Field(
        512, ge=1, description="open connections `lookalike serve` allows; more get 503 from uvicorn"
    )
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest accepted upload")
    max_image_pixels: int = Field(40_000_000, ge=1, description="largest accepted width x height")
    duplicate_policy: Literal["off", "report", "refuse"] = Field(
        "report",
        description="an image nearly equal to a stored one: off, report (in the answer) or refuse (409)",
    )
    duplicate_threshold: float = Field(
        0.9, gt=0, le=1, description="cosine at which images count as near-duplicates"
    )
    rerank: Literal["store", "on", "off"] = Field(
        "store",
        description="local matching of photo searches (the local index's candidates, verified "
        "geometrically; docs/MATCHING.md): as the store decided (lookalike build --rerank), or on/off "
        "for this server",
    )
    rerank_k: int = Field(
        0, ge=0, le=1000, description="shortlist candidates verified per search (0: the store's option)"
    )
    rerank_budget_ms: float = Field(
        0,
        ge=0,
        le=10_000,
        description="CPU per search for the local search and verification, ms (0: the store's option)",
    )
    index_float16: bool = Field(False, description="store vectors as float16 on the GPU (half the memory)")
    index_gpu_shard: bool = Field(
        False,
        description="with several GPUs: split the index across them (memory), not a copy on each (speed)",
    )
    insecure_dev_mode: bool = Field(
        False, description="writes without an API key; only on a loopback address, for local development"
    )
    cors_origins: str = Field(
        "", description="comma-separated origins allowed to call the API from a browser"
    )
    malloc_tuning: bool = Field(
        True,
        description="glibc keeps big blocks in its heap instead of a mapping each (encoder/allocator.py); "
        "read from the environment at the start of `lookalike build` and `train`",
    )
    host: str = Field("127.0.0.1", description="address `lookalike serve` binds")
    port: int = Field(8000, ge=1, le=65535, description="port `lookalike serve` binds")

    @model_validator(mode="after")
    def _dev_mode_stays_local(self) -> Settings:
        if self.insecure_dev_mode and self.host not in LOOPBACK:
            raise ValueError(
                f"insecure_dev_mode accepts writes without a key, so it only binds a loopback address "
                f"({', '.join(sorted(LOOPBACK))}), not {self.host!r}; set LOOKALIKE_API_KEYS instead"
            )
        return self

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def reload_roots_list(self) -> list[Path]:
        """Where a reload may load from: the configured roots, or the configured pair's folders."""
        roots = [Path(r.strip()) for r in self.reload_roots.split(",") if r.strip()]
        return roots or [self.encoder_path.parent, self.store_dir.parent]

    @property
    def keys(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]
