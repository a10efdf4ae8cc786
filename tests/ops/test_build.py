import csv
import json
from pathlib import Path

import pytest

from encoder.catalog import read_catalog
from index import ProductStore
from ops.build import get_args_parser, main
from tests.conftest import image_bytes


def build(catalog: Path, encoder: Path, store: Path) -> ProductStore:
    args = get_args_parser().parse_args(
        [
            "--catalog",
            str(catalog),
            "--encoder",
            str(encoder),
            "--store",
            str(store),
            "--batch-size",
            "5",
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    return main(args)


def test_folder_catalog_is_embedded_and_searchable(
    photo_folder: Path, tiny_encoder_path: Path, tmp_path: Path
) -> None:
    from encoder import Preprocessor, load_encoder

    store = build(photo_folder, tiny_encoder_path, tmp_path / "store")
    assert store.count() == 12 and store.vector_count() == 12
    product = store.get_by_sku("SKU-04")
    assert product is not None and product.category == "green"
    encoder = load_encoder(tiny_encoder_path)
    query = encoder.embed(Preprocessor(encoder.config)(image_bytes(4))[None]).numpy()
    top = store.search(query, k=1)[0][0]
    assert top.product.sku == "SKU-04" and top.score == pytest.approx(1.0, abs=1e-4)
    store.close()
    assert (tmp_path / "store" / ProductStore.SNAPSHOT_NAME).exists()


def test_csv_catalog_with_several_images_resumes_and_skips_bad_files(
    tiny_encoder_path: Path, tmp_path: Path
) -> None:
    root = tmp_path / "cat"
    (root / "img").mkdir(parents=True)
    for i in range(6):
        (root / "img" / f"{i}.png").write_bytes(image_bytes(i, "PNG"))
    (root / "img" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    rows = [
        {
            "sku": f"P{i}",
            "title": f"Product {i}",
            "category": "c",
            "price": "1.5",
            "image_path": f"img/{i}.png",
            "image_path_2": f"img/{i + 3}.png" if i < 3 else "",
            "attributes": json.dumps({"n": i}),
        }
        for i in range(3)
    ]
    rows.append(
        {
            "sku": "BAD",
            "title": "Broken",
            "category": "c",
            "price": "",
            "image_path": "img/broken.jpg",
            "image_path_2": "",
            "attributes": "",
        }
    )
    with (root / "catalog.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    items = read_catalog(root / "catalog.csv")
    assert len(items[0].image_paths) == 2 and items[0].attributes == {"n": 0} and items[0].price == 1.5
    store = build(root / "catalog.csv", tiny_encoder_path, tmp_path / "store")
    assert store.count() == 3 and store.vector_count() == 6 and store.get_by_sku("BAD") is None
    store.close()
    store = build(root / "catalog.csv", tiny_encoder_path, tmp_path / "store")  # resumes: nothing new
    assert store.count() == 3 and store.vector_count() == 6
    store.close()


def test_bad_catalogs_are_explained(tmp_path: Path) -> None:
    (tmp_path / "dup.csv").write_text("sku,title,image_path\nA,a,x.jpg\nA,b,y.jpg\n")
    with pytest.raises(ValueError, match="duplicate skus"):
        read_catalog(tmp_path / "dup.csv")
    (tmp_path / "cols.csv").write_text("name,picture\nA,x.jpg\n")
    with pytest.raises(ValueError, match="image_path"):
        read_catalog(tmp_path / "cols.csv")
    with pytest.raises(ValueError, match="neither"):
        read_catalog(tmp_path / "missing")


def test_build_ends_with_the_index_recall_and_the_match_calibration(
    photo_folder: Path, tiny_encoder_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from index.thresholds import load

    store = build(photo_folder, tiny_encoder_path, tmp_path / "store")
    out = capsys.readouterr().out
    assert "built Flat over 12 vectors" in out and "recall@10 vs exact search" in out
    assert "match thresholds from 12 catalog photos" in out and load(store) is not None
    store.close()
    build(photo_folder, tiny_encoder_path, tmp_path / "store").close()  # resumed, nothing new
    out = capsys.readouterr().out
    assert "12 already stored, 0 to embed" in out and "built" not in out
