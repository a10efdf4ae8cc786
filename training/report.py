"""One self-contained HTML page of a retrieval evaluation, for a person to read before trusting
an encoder: the metrics table, a recall@k curve per entry, and the worst queries with their top
results (green border = same label, red = another).

Everything is inline (thumbnails as base64 JPEG, the plot as a base64 PNG drawn by matplotlib's
Agg canvas), so the page can be mailed or archived as one file. It knows nothing of models: it
takes rankings, labels and image paths as plain arrays and lists.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from encoder import open_image_file

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; }
.metrics td, .metrics th { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
.metrics td:first-child, .metrics th:first-child, .metrics td.id { text-align: left; }
.metrics .best { font-weight: bold; }
.metrics td.id { max-width: 14em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; word-break: break-all; }
.grid td { vertical-align: top; padding: 0.25em; }
figure { margin: 0; width: 8.5em; font-size: 0.8em; word-break: break-all; }
figure img { display: block; max-width: 8em; max-height: 8em; border: 4px solid #999; }
figure.query img { border-color: #36c; }
figure.hit img { border-color: #2a2; }
figure.miss img { border-color: #d22; }
.note { color: #555; }
"""


def thumbnail_uri(path: str | Path, size: int = 112, quality: int = 70) -> str:
    """``path`` as a ``data:image/jpeg;base64,...`` URI, longer side at most ``size`` pixels."""
    image = open_image_file(path)
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def recall_curve_png(curves: Mapping[str, Sequence[float]], dpi: int = 100) -> bytes:
    """A PNG of recall@k against k = 1..K, one line per entry of ``curves`` ({name: (K,) values})."""
    fig = Figure(figsize=(7.5, 4), dpi=dpi)
    FigureCanvasAgg(fig)  # the Agg canvas, without pyplot's global state
    ax = fig.add_subplot()
    longest = max((len(c) for c in curves.values()), default=1)
    for name, curve in curves.items():
        ks = np.arange(1, len(curve) + 1)
        # a label starting with "_" would be left out of the legend
        ax.plot(ks, curve, marker="o", markersize=3, label=name if not name.startswith("_") else f" {name}")
    ax.set_xlabel("k (results looked at)")
    ax.set_ylabel("recall@k")
    ax.set_xlim(0.5, longest + 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(np.arange(1, longest + 1))
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def worst_first(first_hit: np.ndarray) -> np.ndarray:
    """Query indices, worst first: those with no correct item (rank 0) first, then by the rank
    of the first correct item, descending; ties keep the query order. first_hit: (Q,) int."""
    badness = np.where(first_hit == 0, np.iinfo(np.int64).max, first_hit.astype(np.int64))  # (Q,)
    return np.argsort(-badness, kind="stable")


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _metrics_table(reports: Mapping[str, Mapping[str, float]], identities: Mapping[str, str]) -> str:
    metrics = list(dict.fromkeys(m for report in reports.values() for m in report))
    best = {m: max(r[m] for r in reports.values() if m in r) for m in metrics}
    head = "".join(f"<th>{_esc(m)}</th>" for m in metrics)

    def cell(report: Mapping[str, float], metric: str) -> str:
        if metric not in report:
            return "<td></td>"
        bold = ' class="best"' if len(reports) > 1 and report[metric] == best[metric] else ""
        return f"<td{bold}>{report[metric]:.3f}</td>"

    rows = []
    for name, report in reports.items():
        cells = "".join(cell(report, m) for m in metrics)
        identity = _esc(identities.get(name, ""))
        rows.append(f'<tr><td>{_esc(name)}</td><td class="id" title="{identity}">{identity}</td>{cells}</tr>')
    return (
        f'<table class="metrics"><thead><tr><th>encoder</th><th>identity</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _short(path: str | Path) -> str:
    """The file name with its folder (``Canon/001.jpg``): enough to tell photos apart."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _figure(kind: str, uri: str, alt: str, caption: str) -> str:
    return (
        f'<figure class="{kind}"><img src="{uri}" alt="{_esc(alt)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _query_grid(
    ranked: np.ndarray,
    first_hit: np.ndarray,
    query_paths: Sequence[str | Path],
    query_labels: Sequence[str],
    gallery_paths: Sequence[str | Path],
    gallery_labels: Sequence[str],
    max_queries: int,
    top: int,
    thumb_size: int,
) -> str:
    cache: dict[str, str] = {}

    def uri(path: str | Path) -> str:
        key = str(path)
        if key not in cache:
            cache[key] = thumbnail_uri(path, thumb_size)
        return cache[key]

    rows = []
    for i in worst_first(first_hit)[:max_queries]:
        label = query_labels[i]
        found = f"first correct: rank {first_hit[i]}" if first_hit[i] else "no correct item in the gallery"
        cells = [
            _figure(
                "query",
                uri(query_paths[i]),
                f"query {label}",
                f"<strong>{_esc(label)}</strong><br>{_esc(found)}<br>{_esc(_short(query_paths[i]))}",
            )
        ]
        for rank, j in enumerate(ranked[i, :top], 1):
            kind = "hit" if gallery_labels[j] == label else "miss"
            alt = f"#{rank} {gallery_labels[j]} ({kind})"
            mark = "\u2713" if kind == "hit" else "\u2717"  # check / cross, beside the colour
            caption = f"{mark} #{rank} {_esc(gallery_labels[j])}<br>{_esc(_short(gallery_paths[j]))}"
            cells.append(_figure(kind, uri(gallery_paths[j]), alt, caption))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="grid"><tbody>{"".join(rows)}</tbody></table>'


def render_report(
    *,
    reports: Mapping[str, Mapping[str, float]],
    curves: Mapping[str, Sequence[float]],
    shown: str,
    ranked: np.ndarray,
    first_hit: np.ndarray,
    query_paths: Sequence[str | Path],
    query_labels: Sequence[str],
    gallery_paths: Sequence[str | Path],
    gallery_labels: Sequence[str],
    details: Mapping[str, str] | None = None,
    identities: Mapping[str, str] | None = None,
    max_queries: int = 50,
    top: int = 5,
    thumb_size: int = 112,
    title: str = "Retrieval evaluation",
) -> str:
    """The HTML page, as a string.

    reports: {name: {metric: value}}, one table row each; curves: {name: (K,) recall@1..K};
    shown: the name whose queries the grid shows; ranked: (Q, >= top) gallery indices of that
    entry, best first; first_hit: (Q,) 1-based rank of its first correct gallery item, 0 = none
    (``metrics.first_hit_rank``); query_* and gallery_*: Q and G image paths and labels;
    details: {what: value} lines of the header (data sets, counts, date, fingerprint);
    identities: {name: text} beside each table row (e.g. a fingerprint). The grid holds the
    ``max_queries`` worst queries (``worst_first``), each with its ``top`` results.
    """
    if max_queries < 0 or top < 1:
        raise ValueError(f"max_queries must be >= 0 and top >= 1, got {max_queries} and {top}")
    n_queries, n_gallery = len(query_paths), len(gallery_paths)
    if not (len(query_labels) == n_queries == len(first_hit) == ranked.shape[0]):
        raise ValueError(
            f"{n_queries} query paths, {len(query_labels)} labels, {len(first_hit)} first-hit ranks "
            f"and {ranked.shape[0]} rankings: one of each per query is needed"
        )
    if len(gallery_labels) != n_gallery:
        raise ValueError(f"{n_gallery} gallery paths but {len(gallery_labels)} gallery labels")
    plot = base64.b64encode(recall_curve_png(curves)).decode("ascii")
    info = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in (details or {}).items())
    shown_queries = min(max_queries, n_queries)
    not_found = int((first_hit == 0).sum())
    none_first = f", the {not_found} with no correct image in the gallery first" if not_found else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f"<dl>{info}</dl>",
        "<h2>Metrics</h2>",
        '<p class="note">A hit is a gallery image with the query\'s label. recall@k: share of '
        "queries with a hit among their first k results; mAP@10: mean average precision over "
        "the first 10. Best value per column in bold.</p>",
        _metrics_table(reports, identities or {}),
        "<h2>recall@k</h2>",
        f'<img src="data:image/png;base64,{plot}" alt="recall@k curves of {len(curves)} encoder(s)">',
        f"<h2>Worst queries of {_esc(shown)}</h2>",
        f'<p class="note">The {shown_queries} worst of {n_queries} queries, by the rank of the first '
        f"correct gallery image{none_first}; each with its top "
        f"{min(top, ranked.shape[1])} of {n_gallery}: green border = same label, red = another.</p>",
        _query_grid(
            ranked,
            first_hit,
            query_paths,
            query_labels,
            gallery_paths,
            gallery_labels,
            max_queries,
            top,
            thumb_size,
        ),
        "</body></html>",
    ]
    return "\n".join(parts)
