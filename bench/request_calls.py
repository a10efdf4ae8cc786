"""Python calls a search makes on the server's event loop: a figure the machine's load cannot move.

    .venv/bin/python bench/request_calls.py --queries ../shared/data/clothing-small/test

The app (``create_app``, mobilenet_v3_small at 128 px, a store of the demo catalog) serves
searches through Starlette's test client; a profile hook on the event loop's thread only counts
every Python and C function call from the first byte of a request to its answer (the app,
FastAPI, Starlette, multipart parsing, validation, JSON; not the decode threads or the encoder's
thread, whose work is the search itself). CPU time on a shared machine moves with the load; the
number of calls does not, so it compares two versions of the request path exactly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastapi.testclient import TestClient  # noqa: E402
from serve_load import make_store  # noqa: E402

from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402


class CallCounter:
    """``sys.setprofile`` hook for one thread: counts calls while ``on``."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", default="demo/catalog.csv")
    parser.add_argument("--queries", default="../shared/data/clothing-small/test")
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted(Path(args.queries).rglob("*.jpg"))[: args.requests]]
    with tempfile.TemporaryDirectory() as tmp:
        store_args = argparse.Namespace(
            encoder=None, arch="mobilenet_v3_small", image_size=128, catalog=args.catalog
        )
        encoder, store = make_store(store_args, Path(tmp))
        app = create_app(Settings(encoder_path=encoder, store_dir=store, rerank="off"))
        counter = CallCounter()
        bodies = {
            "multipart form": lambda c, p: c.post("/search", files={"image": ("q.jpg", p, "image/jpeg")}),
            "raw body": lambda c, p: c.post("/search", content=p, headers={"Content-Type": "image/jpeg"}),
        }
        with TestClient(app) as client:
            for name, send in bodies.items():
                if send(client, photos[0]).status_code != 200:
                    print(f"{name}: not accepted by this version")
                    continue
                counts = []
                for photo in photos:
                    counter.calls = 0
                    client.portal.call(sys.setprofile, counter)  # type: ignore[union-attr]  # the loop's thread
                    response = send(client, photo)
                    client.portal.call(sys.setprofile, None)  # type: ignore[union-attr]
                    assert response.status_code == 200, response.text
                    counts.append(counter.calls)
                counts.sort()
                print(
                    f"{name}: {counts[len(counts) // 2]} calls per search on the event loop "
                    f"(median of {len(counts)}; min {counts[0]}, max {counts[-1]})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
