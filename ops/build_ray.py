"""``lookalike build --ray ADDRESS``: embed a catalog on a Ray cluster, store it in this process.

Ray Data streams the catalog's products through an actor pool (``map_batches`` with a callable
class): one encoder per GPU when the cluster has GPUs, else one per CPU. Each actor reads,
decodes, preprocesses and embeds a batch of products exactly as the single-process build does
(``Preprocessor``, then ``Encoder.embed``: eval mode, float32, L2-normalised) and hands back the
image bytes with their embeddings. The results come back in catalog order (``iter_batches``) and
this process, the store's only writer, adds each batch with ``ProductStore.add_products``.

Only product positions and image paths travel to the workers; titles, prices and attributes stay
here. The workers must see the image paths (a shared file system) and have lookalike installed.
Ray is imported inside the functions, so nothing else in the project needs it.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from encoder import Encoder, EncoderConfig, ImageDecodeError, Preprocessor, encoder_fingerprint, pick_device
from encoder.catalog import CatalogItem
from index.features import features_of
from index.records import NewProduct
from index.store import ProductStore
from ops.build_report import BuildReport

MAX_BLOCKS = 2000  # input blocks of the dataset; more only adds scheduling overhead


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ValueError("--ray needs Ray Data: pip install 'ray[data]' (or lookalike[ray])") from exc
    return ray


@contextmanager
def ray_session(address: str) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (``ray://host:10001``, ``host:port``) or start one here
    (``local``) and disconnect afterwards; a connection the caller already made is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
    if address == "local":  # a new Ray instance on this machine, even when another one runs
        ray.init(address="local", include_dashboard=False)
    else:
        _check_reachable(address)
        ray.init(address=address)
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail at once when nothing listens at ``host:port`` (Ray itself would retry for minutes);
    an address without a port (``auto``) is left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ValueError(
            f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` and give the "
            "address it prints, or use --ray local"
        ) from exc


class EmbedProducts:
    """Ray Data callable class: one encoder per actor; a batch of products -> images + embeddings.

    In: ``pos`` (int), ``paths`` (list of image paths). Out: ``pos``, ``images`` (list of the
    files' bytes), ``embeddings`` (float32 bytes, (len(images), D) row-major) and ``error`` (empty,
    or why the product was skipped: an unreadable or undecodable image, as in the plain build).
    """

    def __init__(self, weights: Any, fingerprint: str, device: str, threads: int) -> None:
        import ray

        torch.set_num_threads(threads)
        config, state_dict = ray.get(weights) if isinstance(weights, ray.ObjectRef) else weights
        encoder = Encoder(EncoderConfig.from_dict(config))
        encoder.load_state_dict(state_dict, strict=True)
        if encoder_fingerprint(encoder) != fingerprint:
            raise RuntimeError("the encoder arrived changed on this worker (fingerprint differs)")
        self.encoder = encoder.to(pick_device(device)).eval()
        self.preprocess = Preprocessor(encoder.config)
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def _load(self, paths: list[str]) -> tuple[list[bytes], list[torch.Tensor]]:
        data = [Path(p).read_bytes() for p in paths]
        return data, [self.preprocess(d) for d in data]

    def _try_load(self, paths: list[str]) -> tuple[list[bytes], list[torch.Tensor], str]:
        try:
            return (*self._load(paths), "")
        except (OSError, ImageDecodeError) as exc:
            return [], [], str(exc)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        paths = batch.column("paths").to_pylist()
        loaded = list(self.pool.map(self._try_load, paths) if self.pool else map(self._try_load, paths))
        tensors = [t for _, pixels, _ in loaded for t in pixels]
        vectors = (  # (M, D): every image of the batch, in order
            self.encoder.embed(torch.stack(tensors)).cpu().numpy()
            if tensors
            else np.empty((0, self.encoder.embed_dim), dtype=np.float32)
        )
        ends = np.cumsum([len(pixels) for _, pixels, _ in loaded])
        blobs = [vectors[end - len(px) : end].tobytes() for (_, px, _), end in zip(loaded, ends, strict=True)]
        return pa.table(
            {
                "pos": batch.column("pos"),
                "images": pa.array([data for data, _, _ in loaded], type=pa.list_(pa.large_binary())),
                "embeddings": pa.array(blobs, type=pa.binary()),
                "error": pa.array([error for _, _, error in loaded], type=pa.string()),
            }
        )


def _actor_shape(ray: Any, device: str, workers: int | None) -> tuple[int, dict[str, float], int]:
    """(actors, resources per actor, threads per actor) for ``device`` on the connected cluster."""
    total = ray.cluster_resources()
    gpus, cpus = int(total.get("GPU", 0)), int(total.get("CPU", 0))
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda with --ray, not {device!r}")
    use_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
    if use_gpu and gpus == 0:
        raise ValueError(f"--device {device} asks for GPUs but the Ray cluster has none; use auto or cpu")
    available = gpus if use_gpu else cpus
    workers = available if workers is None else workers
    if not 1 <= workers <= available:
        kind = "GPUs" if use_gpu else "CPUs"
        raise ValueError(f"--ray-workers must be 1..{available} (the cluster's {kind}), not {workers}")
    if not use_gpu:
        return workers, {"num_cpus": 1}, 1
    # each GPU actor decodes with the CPUs its node has per GPU (the narrowest GPU node decides)
    per_gpu = [
        int(n["Resources"].get("CPU", 0) // n["Resources"]["GPU"])
        for n in ray.nodes()
        if n.get("Alive") and n["Resources"].get("GPU")
    ]
    threads = max(1, min(per_gpu, default=1))
    return workers, {"num_gpus": 1, "num_cpus": threads}, threads


def embed_catalog_ray(
    encoder: Encoder,
    store: ProductStore,
    items: list[CatalogItem],
    workers: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    progress: bool = True,
) -> BuildReport:
    """Embed ``items`` on the connected Ray cluster and add them to ``store`` in catalog order.

    ``workers``: actors in the pool (default: one per GPU, else one per CPU of the cluster);
    ``device``: auto (GPUs when the cluster has them), cpu or cuda. Same result as
    ``ops.build.embed_catalog``; unreadable items are reported in ``BuildReport.failures``.
    """
    ray = _ray()
    report = BuildReport()
    if not items:
        return report
    actors, resources, threads = _actor_shape(ray, device, workers)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    weights = ray.put((encoder.config.to_dict(), state))
    rows = [{"pos": n, "paths": [str(p.resolve()) for p in i.image_paths]} for n, i in enumerate(items)]
    blocks = min(len(rows), MAX_BLOCKS, math.ceil(len(rows) / max(1, batch_size)) or 1)
    context = ray.data.DataContext.get_current()
    saved = context.execution_options.preserve_order, context.enable_progress_bars
    context.execution_options.preserve_order = True  # the same product ids as the plain build
    context.enable_progress_bars = False
    each = " + ".join(f"{v:g} {k[4:-1].upper()}" for k, v in resources.items())  # "1 GPU + 4 CPU"
    print(f"embedding on Ray: {actors} actors, each holding {each} and running {threads} torch threads")
    dim = encoder.config.embed_dim
    local_features = store.local.ready  # found here, by the driver, as each batch arrives
    try:
        results = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            EmbedProducts,
            batch_size=max(1, batch_size),
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={
                "weights": weights,
                "fingerprint": encoder_fingerprint(encoder),
                "device": "cuda" if "num_gpus" in resources else "cpu",
                "threads": threads,
            },
            **resources,
        )
        started = time.perf_counter()
        with tqdm(total=len(items), disable=not progress, desc="embedding", unit="product") as bar:
            for batch in results.iter_batches(batch_size=max(1, batch_size), batch_format="pyarrow"):
                new = []
                columns = (batch.column(c).to_pylist() for c in ("pos", "images", "embeddings", "error"))
                for pos, images, blob, error in zip(*columns, strict=True):
                    item = items[pos]
                    if error:
                        report.failures.append(f"{item.sku}: {error}")
                        continue
                    vectors = np.frombuffer(blob, dtype=np.float32).reshape(len(images), dim)
                    new.append(
                        NewProduct(
                            item.sku,
                            item.title,
                            item.category,
                            item.price,
                            item.attributes,
                            tuple(images),
                            vectors,
                            features_of(images) if local_features else None,
                        )
                    )
                    report.images += len(images)
                if new:
                    report.near_duplicates += store.add_products(new).near_duplicates
                bar.update(batch.num_rows)
        report.seconds = time.perf_counter() - started
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
    return report
