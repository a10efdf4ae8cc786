"""``encoder.pt``: {"config", "state_dict", "fingerprint"}, written atomically, loaded strictly.

The fingerprint (sha256 over the canonical config and every weight tensor) names an encoder
everywhere downstream: the product store refuses embeddings made by another fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch

from encoder.atomic import atomic_write
from encoder.model import Encoder, EncoderConfig

FORMAT_VERSION = 1


def fingerprint_of(config: EncoderConfig, state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 hex digest of the config JSON and the weights (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def encoder_fingerprint(encoder: Encoder) -> str:
    return fingerprint_of(encoder.config, encoder.state_dict())


def save_encoder(encoder: Encoder, path: str | os.PathLike[str]) -> str:
    """Write ``encoder`` to ``path`` atomically (temp file, fsync, rename); return its fingerprint."""
    state_dict = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    fingerprint = fingerprint_of(encoder.config, state_dict)
    payload = {
        "format_version": FORMAT_VERSION,
        "config": encoder.config.to_dict(),
        "state_dict": state_dict,
        "fingerprint": fingerprint,
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return fingerprint


def load_encoder(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Encoder:
    """Rebuild the encoder from its saved config and load the weights with ``strict=True``.

    Raises ``ValueError`` when the file is not an encoder checkpoint or its weights do not
    match the recorded fingerprint (a corrupted or hand-edited file).
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickle / zip errors: say what the file should be
        raise ValueError(f"{path} is not a readable encoder checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or not {"config", "state_dict", "fingerprint"} <= set(payload):
        raise ValueError(
            f"{path} is not an encoder checkpoint (expected keys config, state_dict, fingerprint);"
            " export one with `lookalike train --out encoder.pt`"
        )
    config = EncoderConfig.from_dict(dict(payload["config"]))
    state_dict = payload["state_dict"]
    actual = fingerprint_of(config, state_dict)
    if actual != payload["fingerprint"]:
        raise ValueError(
            f"{path}: weights do not match the recorded fingerprint "
            f"({actual[:12]} != {payload['fingerprint'][:12]}); the file is corrupted"
        )
    encoder = Encoder(config)
    encoder.load_state_dict(state_dict, strict=True)
    return encoder.to(map_location).eval()
