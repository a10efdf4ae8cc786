"""``lookalike build --ray``: a Ray Data actor pool embeds, this process stores; the store it makes
equals the single-process build's. A local Ray cluster with 2 CPUs is started here and stopped."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from index import ProductStore
from index.thresholds import load as load_thresholds
from ops.build import get_args_parser, main
from tests.conftest import image_bytes

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_IMPORT_WARNING": "1"}
PRODUCTS = 24


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A Ray cluster of this test process: 2 CPUs, a small object store, no dashboard."""
    os.environ.update(RAY_ENV)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 << 20, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same catalog as catalog.csv and catalog.parquet: 24 products, some with two photos,
    one the same photo as another product's (a near-duplicate), one unreadable."""
    root = tmp_path_factory.mktemp("catalog")
    (root / "img").mkdir()
    for i in range(PRODUCTS + 4):
        (root / "img" / f"{i}.jpg").write_bytes(image_bytes(i, size=(80 + 4 * (i % 5), 96)))
    (root / "img" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    rows = []
    for i in range(PRODUCTS):
        second = f"img/{PRODUCTS + i}.jpg" if i < 4 else ""
        first = "img/broken.jpg" if i == 7 else "img/3.jpg" if i == 11 else f"img/{i}.jpg"
        rows.append(
            {
                "sku": f"P{i:02d}",
                "title": f"Product {i}",
                "category": ["dress", "hat", "shoes"][i % 3],
                "price": f"{10 + i * 1.25:.2f}" if i % 5 else "",
                "image_path": first,
                "image_path_2": second,
                "attributes": json.dumps({"n": i, "even": i % 2 == 0}) if i % 4 else "",
            }
        )
    with (root / "catalog.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    typed = [{**r, "price": float(r["price"]) if r["price"] else None} for r in rows]
    pq.write_table(pa.Table.from_pylist(typed), root / "catalog.parquet")
    return root


def build_args(catalog: Path, encoder: Path, store: Path, *extra: str) -> list[str]:
    return [
        "--catalog",
        str(catalog),
        "--encoder",
        str(encoder),
        "--store",
        str(store),
        "--batch-size",
        "5",
        "--no-progress",
        *extra,
    ]


def build(*args: str) -> ProductStore:
    return main(get_args_parser().parse_args(args))


def contents(store: ProductStore) -> dict[str, Any]:
    """Everything a build decides: products and their fields, photos by hash, embeddings by photo."""
    vectors = {int(i): v for ids, vs in store.iter_embeddings() for i, v in zip(ids, vs, strict=True)}
    products = {}
    for p in store.list_products(0, 1000):
        products[p.sku] = {
            "id": p.id,
            "fields": (p.title, p.category, p.price, p.attributes),
            "hashes": [image.content_hash for image in p.images],
            "embeddings": np.stack([vectors[image.id] for image in p.images]),
            "files": [(store.directory / image.path).read_bytes() for image in p.images],
        }
    return products


def assert_same_store(got: ProductStore, expected: ProductStore) -> None:
    a, b = contents(got), contents(expected)
    assert sorted(a) == sorted(b)
    for sku in b:
        assert a[sku]["id"] == b[sku]["id"], sku
        assert a[sku]["fields"] == b[sku]["fields"], sku
        assert a[sku]["hashes"] == b[sku]["hashes"], sku
        assert a[sku]["files"] == b[sku]["files"], sku
        np.testing.assert_allclose(a[sku]["embeddings"], b[sku]["embeddings"], rtol=0, atol=1e-5)
    assert got.vector_count() == expected.vector_count() == sum(len(p["hashes"]) for p in b.values())
    assert got.index_info()["type"] == expected.index_info()["type"]
    ours, theirs = load_thresholds(got), load_thresholds(expected)
    assert ours is not None and theirs is not None
    assert ours.strong == pytest.approx(theirs.strong, abs=1e-4)
    assert ours.weak == pytest.approx(theirs.weak, abs=1e-4)


def test_ray_build_from_the_command_line_equals_the_single_process_build(
    ray_address: str, catalog: Path, tiny_encoder_path: Path, tmp_path: Path
) -> None:
    single = build(
        *build_args(catalog / "catalog.csv", tiny_encoder_path, tmp_path / "single", "--workers", "0")
    )
    command = [sys.executable, "-m", "lookalike", "build"]
    command += build_args(catalog / "catalog.parquet", tiny_encoder_path, tmp_path / "ray")
    command += ["--ray", ray_address, "--ray-workers", "2"]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **RAY_ENV}, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"{PRODUCTS} catalog items, 0 already stored, {PRODUCTS} to embed on Ray ({ray_address})"
        in done.stdout
    )
    assert "embedding on Ray: 2 actors" in done.stdout
    assert "skipped P07: the image could not be decoded" in done.stdout
    assert "near-duplicate: image 0 of P11 ~ P03" in done.stdout
    assert "built Flat over" in done.stdout and "match thresholds from" in done.stdout
    with ProductStore(tmp_path / "ray") as by_ray:
        assert by_ray.get_by_sku("P07") is None and by_ray.count() == PRODUCTS - 1
        assert_same_store(by_ray, single)
    single.close()


def test_ray_build_resumes_a_partial_store(
    ray_address: str,
    catalog: Path,
    tiny_encoder_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A store holding the first products (plain build of a shorter catalog) is completed on Ray,
    through this process's connection to the cluster, into what a plain build makes."""
    lines = (catalog / "catalog.csv").read_text().splitlines(keepends=True)
    (catalog / "first.csv").write_text("".join(lines[:9]))
    build(*build_args(catalog / "first.csv", tiny_encoder_path, tmp_path / "ray", "--workers", "0")).close()
    capsys.readouterr()
    by_ray = build(
        *build_args(catalog / "catalog.csv", tiny_encoder_path, tmp_path / "ray", "--ray", ray_address)
    )
    out = capsys.readouterr().out
    # P07's photo is unreadable, so it is not stored and is tried again
    assert f"{PRODUCTS} catalog items, 7 already stored, {PRODUCTS - 7} to embed on Ray" in out
    assert "embedding on Ray: 2 actors" in out  # the cluster's 2 CPUs, one encoder each
    assert ray.is_initialized()  # the caller's connection is left open
    single = build(
        *build_args(catalog / "catalog.csv", tiny_encoder_path, tmp_path / "single", "--workers", "0")
    )
    assert_same_store(by_ray, single)
    by_ray.close()
    single.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ray-workers", "3"], r"--ray-workers must be 1\.\.2 \(the cluster's CPUs\), not 3"),
        (["--ray-workers", "0"], r"--ray-workers must be 1\.\.2"),
        (["--device", "cuda"], "asks for GPUs but the Ray cluster has none"),
        (["--device", "mps"], "--device must be auto, cpu or cuda with --ray"),
    ],
)
def test_impossible_ray_requests_are_explained(
    ray_address: str, catalog: Path, tiny_encoder_path: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = build_args(catalog / "catalog.csv", tiny_encoder_path, tmp_path / "store", "--ray", ray_address)
    with pytest.raises(ValueError, match=message):
        build(*args, *extra)


def test_local_starts_a_ray_of_its_own_and_stops_it(ray_address: str) -> None:
    """``--ray local``: a new instance on this machine even while another cluster runs, shut down after."""
    script = (
        "import ray\n"
        "from ops.build_ray import ray_session\n"
        "with ray_session('local'):\n"
        "    print(ray.get_runtime_context().gcs_address, ray.cluster_resources()['CPU'])\n"
        "print('after', ray.is_initialized())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **RAY_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[0] != ray_address and float(words[1]) >= 1 and words[-2:] == ["after", "False"]


def test_an_address_where_no_ray_answers_is_refused_plainly(
    catalog: Path, tiny_encoder_path: Path, tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "lookalike", "build"]
    command += build_args(catalog / "catalog.csv", tiny_encoder_path, tmp_path / "store")
    command += ["--ray", f"127.0.0.1:{port}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"error: no Ray cluster answers at 127.0.0.1:{port}" in done.stderr
    assert "ray start --head" in done.stderr
