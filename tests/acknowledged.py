"""Writes a real server acknowledged over HTTP, and the check that each still holds afterwards.

Used by the SIGKILL test (tests/app/test_kill_server.py) and the soak (bench/soak.py): a writer
records every add and delete the server answered 2xx; a request that got no answer (the server
was killed, the connection dropped) may or may not have happened, so its product is *uncertain*
and left out of the check. Everything else must be exactly as acknowledged.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Added:
    product_id: int
    sku: str
    photos: tuple[bytes, ...]  # as sent, in the order of image_ids
    image_ids: tuple[int, ...]


@dataclass
class Ledger:
    """Acknowledged adds and deletes, shared by writer threads (or tasks)."""

    added: dict[int, Added] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    uncertain: set[int] = field(default_factory=set)  # a delete in flight when the answer was lost
    unanswered: int = 0  # writes that got no answer: their outcome is unknown
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_answered(self, response: httpx.Response, sku: str, photos: tuple[bytes, ...]) -> Added:
        """Record a 201 of POST /index."""
        body = response.json()
        added = Added(body["id"], sku, photos, tuple(i["id"] for i in body["images"]))
        with self._lock:
            self.added[added.product_id] = added
        return added

    def delete_answered(self, product_id: int) -> None:
        """Record a 204 of DELETE /products/{id}."""
        with self._lock:
            self.deleted.add(product_id)

    def no_answer(self, product_id: int | None = None) -> None:
        """A write without an answer; ``product_id``: the product a lost delete was about."""
        with self._lock:
            self.unanswered += 1
            if product_id is not None:
                self.uncertain.add(product_id)

    def live(self) -> list[Added]:
        """Acknowledged adds with no acknowledged or uncertain delete."""
        with self._lock:
            gone = self.deleted | self.uncertain
            return [a for pid, a in self.added.items() if pid not in gone]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(http: httpx.Client, ledger: Ledger, search: bool = True) -> list[str]:
    """Problems with what ``ledger`` says was acknowledged (empty: nothing lost, nothing back).

    Every live add is there with its sku and its photos byte for byte, and (``search``) found by
    its first photo; every acknowledged delete is 404.
    """
    problems: list[str] = []
    for a in ledger.live():
        r = http.get(f"/products/{a.product_id}")
        if r.status_code != 200 or r.json()["sku"] != a.sku:
            problems.append(f"acknowledged add {a.sku} (id {a.product_id}) is lost: {r.status_code}")
            continue
        for image_id, photo in zip(a.image_ids, a.photos, strict=True):
            got = http.get(f"/products/{a.product_id}/images/{image_id}")
            if got.status_code != 200 or _sha(got.content) != _sha(photo):
                problems.append(f"photo {image_id} of {a.sku} is lost or changed: {got.status_code}")
        if search:
            found = http.post("/search", files={"image": ("p.jpg", a.photos[0])}, data={"k": "100"})
            ids = [h["product_id"] for h in found.json()["results"]] if found.status_code == 200 else []
            if a.product_id not in ids:
                problems.append(f"{a.sku} is not found by its own photo: {found.status_code}")
    for product_id in sorted(ledger.deleted):
        r = http.get(f"/products/{product_id}")
        if r.status_code != 404:
            problems.append(f"acknowledged delete of id {product_id} came back: {r.status_code}")
    return problems
