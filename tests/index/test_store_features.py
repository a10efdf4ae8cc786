"""Local features in the store: kept (compact, under the store's codebook) with their images at
add and at build, gone with them, and filled in for a store made before they existed (schema
version 1), its codebook trained on its own photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder.local_features import FEATURES_KIND, LocalFeatures, extract_features
from index import NewProduct, ProductStore
from index.features import features_of
from index.local.codebook import Codebook
from index.local.compact import CompactFeatures
from index.rerank import RerankOptions
from ops.maintenance import configure
from ops.maintenance import main as index_main
from tests.conftest import build_store, image_bytes
from tests.encoder.covers import cover, jpeg
from tests.index.conftest import DIM, FP, unit


def product(i: int, vectors: np.ndarray, with_features: bool = True) -> NewProduct:
    images = tuple(jpeg(cover(100 * i + j)) for j in range(len(vectors)))
    return NewProduct(f"SKU-{i}", f"Cover {i}", "dvd", 9.99, {}, images, vectors,
                      features_of(images) if with_features else None)  # fmt: skip


def rows(store: ProductStore) -> int:
    return store.repository.count_features()


@pytest.fixture(scope="module")
def codebook() -> Codebook:
    descriptors = np.concatenate([extract_features(jpeg(cover(1000 + i))).descriptors for i in range(12)])
    return Codebook.train(descriptors, 256, iterations=4)


def same(a: CompactFeatures, b: LocalFeatures, codebook: Codebook) -> bool:
    """``a`` is what ``codebook`` keeps of ``b``."""
    c = codebook.encode(b)
    return np.array_equal(a.words, c.words) and np.array_equal(a.codes, c.codes) and a.count == b.count


def test_features_are_kept_with_their_images(tmp_path: Path, codebook: Codebook) -> None:
    v = unit(np.random.default_rng(0), 3)
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        store.set_codebook(codebook)
        assert store.repository.mean_features_bytes() == 0
        p = store.add_product(product(1, v[:2]))
        kept = store.local_features([i.id for i in p.images])
        assert set(kept) == {i.id for i in p.images}
        assert same(kept[p.images[0].id], extract_features(jpeg(cover(100))), codebook)
        sizes = [len(f.to_bytes()) for f in kept.values()]
        assert store.repository.mean_features_bytes() == pytest.approx(sum(sizes) / len(sizes))
        bare = store.add_product(product(2, v[2:3], with_features=False))
        assert store.local_features([bare.images[0].id]) == {}
    with ProductStore(tmp_path / "s") as store:  # and after a reopen
        assert set(store.local_features([i.id for i in p.images])) == {i.id for i in p.images}


def test_undecodable_bytes_are_stored_without_features(tmp_path: Path, codebook: Codebook) -> None:
    v = unit(np.random.default_rng(1), 2)
    images = (b"not an image", jpeg(cover(3)))
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        store.set_codebook(codebook)
        p = store.add_product(NewProduct("X", "x", None, None, {}, images, v, features_of(images)))
        assert set(store.local_features([i.id for i in p.images])) == {p.images[1].id}
        with pytest.raises(ValueError, match="local features for 2 images"):
            store.add_product(NewProduct("Y", "y", None, None, {}, images, v, features_of(images[:1])))


def test_features_go_with_their_images(tmp_path: Path, codebook: Codebook) -> None:
    v = unit(np.random.default_rng(2), 6)
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        store.set_codebook(codebook)
        p = store.add_product(product(1, v[:2]))
        q = store.add_product(product(2, v[2:3]))
        assert rows(store) == 3
        store.remove_image(p.id, p.images[0].id)
        assert rows(store) == 2 and store.local_features([p.images[0].id]) == {}
        store.remove_product(q.id)
        assert rows(store) == 1
        extra = (jpeg(cover(7)), jpeg(cover(8)))
        result = store.add_images(p.id, extra, v[3:5], replace=True, features=features_of(extra))
        assert result is not None
        new_ids = {i.id for i in result[0].images}
        assert rows(store) == 2 and set(store.local_features(sorted(new_ids))) == new_ids
        assert store.local_features([p.images[1].id]) == {}  # the replaced image's went with it


def test_build_keeps_features_and_the_options(tiny_encoder_path: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog" / "dvd"
    catalog.mkdir(parents=True)
    for i in range(3):
        (catalog / f"DVD-{i}.jpg").write_bytes(jpeg(cover(i)))
    store_dir = build_store(
        catalog.parent, tiny_encoder_path, tmp_path / "on", "--rerank", "on", "--rerank-k", "7"
    )
    with ProductStore(store_dir) as store:
        assert store.rerank_options == RerankOptions(k=7)
        assert store.features.count() == store.image_count() == 3 == len(store.local)
        assert 0 < store.features.mean_bytes() <= 16 * 1024
        assert json.loads(store.get_meta("local_decision") or "{}")["forced"] == "on"
    build_store(catalog.parent, tiny_encoder_path, store_dir, "--rerank", "auto")  # measured again
    with ProductStore(store_dir) as store:
        assert json.loads(store.get_meta("local_decision") or "{}")["forced"] is None
        assert store.local.ready and len(store.local) == 3  # the index is kept
    store_dir = build_store(catalog.parent, tiny_encoder_path, tmp_path / "off", "--rerank", "off")
    with ProductStore(store_dir) as store:
        assert not store.rerank_options.enabled and rows(store) == 0


def make_version_1(store_dir: Path) -> None:
    """Turn a store into what schema version 1 was: no image_features table."""
    with ProductStore(store_dir) as store, store.db.transaction() as tx:
        tx.execute("DROP TABLE image_features")
        tx.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        tx.execute("DELETE FROM meta WHERE key = 'rerank'")


def index_command(*argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    return index_main(parser.parse_args(list(argv)))


def test_a_version_1_store_is_migrated_and_its_features_filled_in(tmp_path: Path) -> None:
    v = unit(np.random.default_rng(3), 4)
    with ProductStore(tmp_path / "s", FP, DIM) as store:  # no codebook: no features kept
        ids = [i.id for n in range(3) for i in store.add_product(product(n, v[n : n + 1])).images]
        store.add_product(NewProduct("RAW", "raw", None, None, {}, (b"raw bytes",), v[3:4]))
    make_version_1(tmp_path / "s")
    with ProductStore(tmp_path / "s") as store:
        assert store.get_meta("schema_version") == "3"
        assert rows(store) == 0 and store.local_features(ids) == {} and not store.local.ready
        assert len(store.search(v[:1], 2)[0]) == 2  # searches as before, nothing to re-rank with
    assert index_command("features", "--store", str(tmp_path / "s")) == 0  # trains a codebook first
    with ProductStore(tmp_path / "s") as store:
        assert store.local.ready and store.local.codebook is not None
        assert set(store.local_features(ids)) == set(ids)  # the undecodable one has none
        assert same(
            store.local_features(ids[:1])[ids[0]], extract_features(jpeg(cover(0))), store.local.codebook
        )
        assert rows(store) == 3 and len(store.local) == 3
    assert index_command("features", "--store", str(tmp_path / "s")) == 0  # nothing left: no change


def test_features_of_another_kind_are_not_handed_out(tmp_path: Path, codebook: Codebook) -> None:
    v = unit(np.random.default_rng(4), 1)
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        store.set_codebook(codebook)
        p = store.add_product(product(1, v))
        store.db.query("UPDATE image_features SET kind = 'asmk-0123456789abcdef'")
        assert store.local_features([p.images[0].id]) == {}
        assert [[i for i, _, _ in batch] for batch in store.features.missing()] == [[p.images[0].id]]
        assert store.local.kind == f"{FEATURES_KIND}/asmk-{codebook.name}"


def test_features_on_postgresql(database_url: str, tmp_path: Path, codebook: Codebook) -> None:
    v = unit(np.random.default_rng(5), 3)
    with ProductStore(tmp_path / "s", FP, DIM, database_url=database_url) as store:
        store.set_codebook(codebook)
        p = store.add_product(product(1, v[:2]))
        kept = store.local_features([i.id for i in p.images])
        assert same(kept[p.images[0].id], extract_features(jpeg(cover(100))), codebook)
        assert len(store.local) == 2
        store.remove_image(p.id, p.images[0].id)
        assert rows(store) == 1
        store.remove_product(p.id)
        assert rows(store) == 0
        bare = store.add_product(NewProduct("B", "b", None, None, {}, (image_bytes(1),), v[2:3]))
        assert store.save_local_features({bare.images[0].id: extract_features(image_bytes(1))}) == 1
        assert set(store.local_features([bare.images[0].id])) == {bare.images[0].id}
        assert bare.images[0].id in store.local.image_ids()
    with ProductStore(tmp_path / "t", database_url=database_url) as replica:  # the codebook is shared
        assert replica.local.codebook is not None and replica.local.codebook.name == codebook.name
