from collections.abc import Iterator
from pathlib import Path

from tests.app.conftest import make_client


def test_declared_oversized_body_is_refused_before_reading(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:
        big = b"\xff\xd8\xff" + b"\0" * 2_000_000
        r = client.post("/search", files={"image": ("big.jpg", big, "image/jpeg")})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_streamed_body_is_cut_off(tiny_encoder_path: Path, store_dir: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for _ in range(100):
            yield b"\0" * 50_000

    with make_client(tiny_encoder_path, store_dir) as client:
        r = client.post(
            "/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert r.status_code == 413
