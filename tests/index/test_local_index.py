"""The local index's parts against brute-force references, and its life inside a real store:
adds, updates and deletes followed, another process's writes followed, a restart rebuilding it,
``index check`` comparing it with the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoder.local_features import LocalFeatures
from index import NewProduct, ProductStore
from index.local.codebook import Codebook, root_sift, words_for
from index.local.compact import CompactFeatures
from index.local.inverted_file import InvertedFile
from index.local.kernel import selective_similarity
from ops.check import check_store

DIM = 8
FP = "e" * 64


def random_aggregates(rng: np.random.Generator, words: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for _ in range(n):
        u = np.unique(rng.integers(0, words, rng.integers(1, 30)))
        out.append((u, rng.integers(0, 2**63, (len(u), 2), dtype=np.uint64)))
    return out


def brute_force(
    photos: dict[int, tuple[np.ndarray, np.ndarray]], words: int, query: tuple[np.ndarray, np.ndarray]
) -> dict[int, float]:
    """ASMK* written out photo by photo: sum over shared words of idf^2 * kernel, over the norms."""
    df = np.zeros(words)
    for u, _ in photos.values():
        df[u] += 1
    idf = np.where(df > 0, np.log(len(photos) / np.maximum(df, 1)), 0.0)
    qw, qc = query
    out = {}
    for image_id, (u, c) in photos.items():
        total = 0.0
        for w, code in zip(qw, qc, strict=True):
            hit = np.flatnonzero(u == w)
            if len(hit):
                h = sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(code, c[hit[0]], strict=True))
                total += idf[w] ** 2 * float(selective_similarity(np.array([h]))[0])
        norm = np.sqrt((idf[u] ** 2).sum()) * np.sqrt((idf[qw] ** 2).sum())
        if total > 0:
            out[image_id] = total / norm
    return out


def test_the_inverted_file_scores_as_the_brute_force_kernel_through_adds_merges_and_removals() -> None:
    rng = np.random.default_rng(0)
    words = 64
    photos = dict(enumerate(random_aggregates(rng, words, 300), start=1000))
    ivf = InvertedFile(words)
    ids = list(photos)
    for start in range(0, len(ids), 37):  # many small adds: the small segment takes them
        ivf.add(ids[start : start + 37], [photos[i] for i in ids[start : start + 37]])
    ivf._merge()  # noqa: SLF001 - one large segment, then more adds into the small one
    ivf.add([5000], [photos[1003]])
    photos[5000] = photos[1003]
    for gone in ids[::3]:
        del photos[gone]
    ivf.remove(ids[::3])
    ivf.refresh_norms_if_drifted()  # as the writer does after each batch
    assert ivf.image_ids() == set(photos) and len(ivf) == len(photos)
    for query in random_aggregates(rng, words, 10) + [photos[1004]]:
        expected = brute_force(photos, words, query)
        found, scores = ivf.search(*query, k=len(photos))
        assert dict(zip(found.tolist(), scores.tolist(), strict=True)) == pytest.approx(expected, rel=1e-4)
        assert list(scores) == sorted(scores, reverse=True)


def test_a_photo_is_its_own_best_match_and_words_outside_the_codebook_are_refused() -> None:
    rng = np.random.default_rng(1)
    photos = random_aggregates(rng, 500, 50)
    ivf = InvertedFile(500)
    ivf.add(list(range(50)), photos)
    found, scores = ivf.search(*photos[17], k=3)
    assert found[0] == 17 and scores[0] == pytest.approx(1.0) and scores[1] < 0.5
    with pytest.raises(ValueError, match="outside"):  # refused whole: nothing of the batch is added
        ivf.add([98, 99], [photos[0], (np.array([500]), np.zeros((1, 2), np.uint64))])
    assert len(ivf) == 50 and 98 not in ivf and ivf.search(*photos[17], k=1)[0][0] == 17
    ivf.add([60, 60], [photos[1], photos[2]])  # one id twice: the last counts, once
    assert len(ivf) == 51 and list(ivf.search(*photos[2], k=2)[0]) in ([2, 60], [60, 2])


def features(seed: int, n: int = 80) -> LocalFeatures:
    rng = np.random.default_rng(seed)
    return LocalFeatures(
        rng.uniform(0, 400, (n, 2)).astype(np.float32), rng.integers(0, 256, (n, 128), np.uint8)
    )


@pytest.fixture(scope="module")
def codebook() -> Codebook:
    descriptors = np.concatenate([features(s).descriptors for s in range(60)])  # (4800, 128)
    return Codebook.train(descriptors, words_for(len(descriptors)), iterations=4)


def test_the_codebook_and_compact_features_round_trip(codebook: Codebook) -> None:
    assert codebook.size == 256 and Codebook.from_bytes(codebook.to_bytes()).name == codebook.name
    f = features(3)
    compact = codebook.encode(f)
    again = CompactFeatures.from_bytes(compact.to_bytes())
    assert np.array_equal(again.words, compact.words) and np.array_equal(again.codes, compact.codes)
    assert np.allclose(again.keypoints, f.keypoints, atol=0.25)  # float16 at 400 px
    assert len(compact.to_bytes()) == 10 + 80 * (4 + 2 + 16 + 16)
    exact = codebook.assign(root_sift(f.descriptors))
    assert np.mean(exact == compact.words) == 1.0
    error = np.linalg.norm(codebook.decode(compact) - root_sift(f.descriptors), axis=1)
    assert error.mean() < 0.5  # unit vectors: PQ keeps them near
    with pytest.raises(ValueError, match="not a compact features blob"):
        CompactFeatures.from_bytes(compact.to_bytes()[:-1])


def product(i: int) -> NewProduct:
    v = np.random.default_rng(i).normal(size=(1, DIM)).astype(np.float32)
    image = b"\x89PNG\r\n\x1a\n" + i.to_bytes(8, "little") * 64
    return NewProduct(
        f"P{i}", f"product {i}", None, None, {}, (image,), v / np.linalg.norm(v), (features(i),)
    )


def local_top(store: ProductStore, seed: int) -> int | None:
    found = store.local.search(features(seed), 1)
    assert found is not None
    return int(found.image_ids[0]) if len(found.image_ids) else None


def test_the_store_keeps_the_local_index_in_step(codebook: Codebook, tmp_path: Path) -> None:
    with ProductStore(tmp_path / "s", FP, DIM, duplicate_policy="off") as store:
        store.add_products([product(0)])  # before the codebook: no features kept
        assert store.features.count() == 0 and not store.local.ready
        store.set_codebook(codebook)
        added = store.add_products([product(i) for i in range(1, 6)]).products
        assert len(store.local) == 5 and local_top(store, 3) == added[2].images[0].id
        assert store.features.mean_bytes() == 10 + 80 * 38
        # replace a product's photo: the old one leaves the index, the new one is found
        store.add_images(
            added[2].id, [b"\x89PNG\r\n\x1a\n" + b"new" * 50], product(30).embeddings, True, [features(30)]
        )
        new_image = store.get_product(added[2].id).images[0].id  # type: ignore[union-attr]
        assert local_top(store, 30) == new_image and local_top(store, 3) != added[2].images[0].id
        store.remove_product(added[0].id)
        assert local_top(store, 1) != added[0].images[0].id and len(store.local) == 4
        with ProductStore(tmp_path / "s") as other:  # another process (a worker) on the same store
            assert len(other.local) == 4
            store.add_products([product(7)])
            assert len(other.local) == 4 and other.sync() == 1 and len(other.local) == 5
            assert local_top(other, 7) == store.get_by_sku("P7").images[0].id  # type: ignore[union-attr]
        assert check_store(store) == []
        store.local.index_features([], [new_image])  # the cache loses a photo: check says so
        assert any("not indexed" in p for p in check_store(store))
        store.rebuild()  # rebuilt from the stored features
        assert check_store(store) == []
    with ProductStore(tmp_path / "s") as reopened:
        assert len(reopened.local) == 5 and local_top(reopened, 30) == new_image
        assert reopened.local.info()["codebook"] == codebook.name


def test_other_processes_follow_a_new_codebook_and_features_found_later(
    codebook: Codebook, tmp_path: Path
) -> None:
    """Writes without a change-log row (a codebook, features of stored photos) reach every process."""
    other_codebook = Codebook.train(
        np.concatenate([features(100 + s).descriptors for s in range(60)]), 256, seed=1, iterations=4
    )
    with (
        ProductStore(tmp_path / "s", FP, DIM, duplicate_policy="off") as a,
        ProductStore(tmp_path / "s") as b,
    ):
        a.set_codebook(codebook)
        assert not b.local.ready and b.sync() == 0 and b.local.codebook.name == codebook.name  # type: ignore[union-attr]
        first = a.add_products([product(i) for i in range(1, 4)]).products
        b.sync()
        assert len(b.local) == 3
        a.set_codebook(other_codebook)  # every photo's features dropped: found again below
        b.add_products([product(9)])  # b has not synced: it must not write rows of the old codebook
        a.sync()
        assert check_store(a) == [] and a.features.count() == 1
        found = {p.images[0].id: features(i) for i, p in zip(range(1, 4), first, strict=True)}
        assert a.save_local_features(found) == 3
        b.sync()
        assert b.local.codebook.name == other_codebook.name and len(b.local) == len(a.local) == 4  # type: ignore[union-attr]
        assert local_top(b, 2) == first[1].images[0].id
        assert check_store(b) == []
