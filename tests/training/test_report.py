"""The evaluation's HTML report: self-contained, faithful to the rankings, escaped; and
`lookalike eval --report` on a CSV gallery and CSV queries."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lookalike.cli import main as cli_main
from tests.conftest import make_image
from training.report import render_report, worst_first

GALLERY_LABELS = ["a", "b", "c", "<b>", "d", "e"]
QUERY_LABELS = ["a", "<b>", "c", "zzz"]  # "zzz": no gallery item has it
RANKED = np.array(  # (Q, 6) gallery indices, best first
    [
        [0, 1, 2, 3, 4, 5],  # "a" found at rank 1
        [1, 2, 4, 5, 0, 3],  # "<b>" (gallery 3) at rank 6: outside the top 5
        [1, 2, 0, 3, 4, 5],  # "c" (gallery 2) at rank 2
        [5, 4, 3, 2, 1, 0],  # "zzz": never
    ]
)
FIRST_HIT = np.array([1, 6, 2, 0])
REPORTS = {
    "encoder.pt": {"recall@1": 0.25, "recall@5": 0.5, "recall@10": 0.75, "map@10": 0.4375},
    "baseline:colour-hist": {"recall@1": 0.125, "recall@5": 0.333, "recall@10": 0.9, "map@10": 0.2},
}
CURVES = {"encoder.pt": [0.25, 0.5, 0.5, 0.5, 0.5, 0.75], "baseline:colour-hist": [0.125] * 6}


def images(folder: Path, prefix: str, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{prefix}{i}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        make_image(seed + i).save(path, quality=90)
    return paths


def page(tmp_path: Path, **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "reports": REPORTS,
        "curves": CURVES,
        "shown": "encoder.pt",
        "ranked": RANKED,
        "first_hit": FIRST_HIT,
        "query_paths": images(tmp_path / "queries", "query", 4, 100),
        "query_labels": QUERY_LABELS,
        "gallery_paths": images(tmp_path / "gallery", "product", 6, 0),
        "gallery_labels": GALLERY_LABELS,
        "details": {"queries": "<queries.csv>", "fingerprint": "abc123"},
        "identities": {"encoder.pt": "abc123", "baseline:colour-hist": "HSV colour histogram"},
    }
    return render_report(**(kwargs | overrides))  # type: ignore[arg-type]


def grid_rows(html: str) -> list[list[tuple[str, str]]]:
    """Per row of the query grid: (figure class, caption) of each cell, query first."""
    grid = html.split('<table class="grid">', 1)[1]
    return [
        re.findall(r'<figure class="(\w+)">.*?<figcaption>(.*?)</figcaption>', row)
        for row in re.findall(r"<tr>(.*?)</tr>", grid)
    ]


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    html = page(tmp_path)
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 1 + 4 * (1 + 5)  # the plot, then each query and its top 5
    assert all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)
    assert "http" not in html and "href" not in html and "url(" not in html
    for source in sources[1:]:  # real JPEG thumbnails, small
        thumb = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert thumb.format == "JPEG" and max(thumb.size) <= 112


def test_the_table_holds_every_entry_and_value(tmp_path: Path) -> None:
    html = page(tmp_path)
    table = html.split('<table class="metrics">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])
    assert len(rows) == 2
    for row, (name, report) in zip(rows, REPORTS.items(), strict=True):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[0] == name
        assert cells[2:] == [f"{report[m]:.3f}" for m in ("recall@1", "recall@5", "recall@10", "map@10")]
    assert '<td class="best">0.900</td>' in table and '<td class="best">0.250</td>' in table


def test_the_curve_is_a_matplotlib_png(tmp_path: Path) -> None:
    html = page(tmp_path)
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert data is not None
    plot = Image.open(io.BytesIO(base64.b64decode(data.group(1))))
    assert plot.format == "PNG" and plot.size[0] >= 600
    assert plot.info["Software"].startswith("Matplotlib")


def test_worst_queries_first_with_hits_and_misses_from_the_labels(tmp_path: Path) -> None:
    rows = grid_rows(page(tmp_path))
    names = [re.search(r"query\d", row[0][1]).group(0) for row in rows]  # type: ignore[union-attr]
    assert names == ["query3", "query1", "query2", "query0"]  # never, rank 6, rank 2, rank 1
    for row, q in zip(rows, [3, 1, 2, 0], strict=True):
        assert row[0][0] == "query"
        expected = ["hit" if GALLERY_LABELS[j] == QUERY_LABELS[q] else "miss" for j in RANKED[q, :5]]
        assert [kind for kind, _ in row[1:]] == expected
        assert all(caption.startswith("\u2713" if kind == "hit" else "\u2717") for kind, caption in row[1:])
    assert rows[0][0][1].count("no correct item") == 1 and "first correct: rank 6" in rows[1][0][1]
    assert [kind for kind, _ in rows[3][1:]] == ["hit", "miss", "miss", "miss", "miss"]


def test_worst_first_order() -> None:
    assert worst_first(np.array([1, 0, 3, 3, 0, 2])).tolist() == [1, 4, 2, 3, 5, 0]


def test_every_string_is_escaped(tmp_path: Path) -> None:
    html = page(
        tmp_path,
        reports={"<script>x</script>": {"recall@1": 1.0}},
        curves={"<script>x</script>": [1.0]},
        shown="<script>x</script>",
    )
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<b>" not in html and "&lt;b&gt;" in html  # a label of the grid
    assert "&lt;queries.csv&gt;" in html  # a header line


def test_the_grid_is_limited(tmp_path: Path) -> None:
    assert len(grid_rows(page(tmp_path, max_queries=2))) == 2
    assert grid_rows(page(tmp_path, max_queries=0)) == []
    with pytest.raises(ValueError, match="one of each per query"):
        page(tmp_path, query_labels=QUERY_LABELS[:3])


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def test_eval_on_csv_gallery_and_csv_queries_writes_the_report(
    tmp_path: Path, tiny_encoder_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A catalog CSV (relative paths) against a queries CSV elsewhere (absolute paths), hit =
    same sku; each query is its product's photo at another size, one query has no product."""
    shop = tmp_path / "shop"
    (shop / "photos").mkdir(parents=True)
    catalog_rows = []
    for i in range(6):
        make_image(i).save(shop / "photos" / f"{i}.jpg", quality=95)
        catalog_rows.append([f"SKU-{i}", f"product {i}", "misc", "9.99", f"photos/{i}.jpg"])
    header = ["sku", "title", "category", "price", "image_path"]
    catalog = write_csv(shop / "catalog.csv", header, catalog_rows)
    phone = tmp_path / "phone"
    phone.mkdir()
    query_rows = []
    for i in [*range(6), 99]:
        make_image(i, size=(72, 96)).save(phone / f"q{i}.jpg", quality=80)
        query_rows.append([str((phone / f"q{i}.jpg").resolve()), f"SKU-{i}", "phone"])
    (tmp_path / "bench").mkdir()
    queries = write_csv(tmp_path / "bench" / "queries.csv", ["image_path", "sku", "device"], query_rows)
    report = tmp_path / "report.html"

    cli_main(
        [
            "eval",
            *("--encoder", str(tiny_encoder_path), "--baseline", "colour-hist"),
            *("--gallery", str(catalog), "--queries", str(queries), "--label-column", "sku"),
            *("--device", "cpu", "--workers", "0", "--batch-size", "4"),
            *("--report", str(report), "--report-queries", "5", "--json"),
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["encoder"] for line in lines] == [str(tiny_encoder_path), "baseline:colour-hist"]
    assert all(line["queries"] == 7 and line["gallery"] == 6 for line in lines)
    hist = lines[1]
    assert hist["recall@1"] == pytest.approx(6 / 7)  # every query but the one without a product

    html = report.read_text(encoding="utf-8")
    fingerprint = torch.load(tiny_encoder_path, weights_only=False)["fingerprint"]
    assert fingerprint in html and "7 images" in html and "6 images" in html
    for line in lines:
        assert f"{line['recall@1']:.3f}" in html and f"{line['map@10']:.3f}" in html
    assert f"Worst queries of {tiny_encoder_path}" in html
    rows = grid_rows(html)
    assert len(rows) == 5 and "q99.jpg" in rows[0][0][1] and "no correct item" in rows[0][0][1]
    assert all(len(row) == 1 + 5 for row in rows)
    assert str(tmp_path) not in "".join(re.findall(r'src="([^"]*)"', html))
