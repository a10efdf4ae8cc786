"""The shared leaf: encoder model, preprocessing, checkpoints, the catalog reader. Imports nothing
of ours.

The torch-free names (image decoding, crops, the catalog reader) are imported here; the names that
need torch resolve on first use (a module ``__getattr__``), so the serving store, which decodes
images but never runs the model, imports this package without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from encoder.catalog import CatalogItem, read_catalog, read_image_list
from encoder.crop import Crop
from encoder.images import (
    MAX_ASPECT,
    MIN_SIDE,
    ImageDecodeError,
    check_shape,
    decode_image,
    list_image_files,
    open_image_file,
    sniff_format,
)

if TYPE_CHECKING:
    from encoder.checkpoint import encoder_fingerprint, fingerprint_of, load_encoder, save_encoder
    from encoder.device import pick_device
    from encoder.model import Encoder, EncoderConfig
    from encoder.preprocess import Preprocessor
    from encoder.pretrained import imagenet_state_dict, load_imagenet_weights
    from encoder.transforms import eval_transform, normalization_for

_NEEDS_TORCH = {  # name -> the module that defines it
    "Encoder": "encoder.model",
    "EncoderConfig": "encoder.model",
    "Preprocessor": "encoder.preprocess",
    "encoder_fingerprint": "encoder.checkpoint",
    "eval_transform": "encoder.transforms",
    "fingerprint_of": "encoder.checkpoint",
    "imagenet_state_dict": "encoder.pretrained",
    "load_encoder": "encoder.checkpoint",
    "load_imagenet_weights": "encoder.pretrained",
    "normalization_for": "encoder.transforms",
    "pick_device": "encoder.device",
    "save_encoder": "encoder.checkpoint",
}


def __getattr__(name: str) -> Any:
    """A torch-heavy name, imported from its module on first use (PEP 562)."""
    module = _NEEDS_TORCH.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup finds it without this function
    return value


__all__ = [
    "MAX_ASPECT",
    "MIN_SIDE",
    "CatalogItem",
    "Crop",
    "Encoder",
    "EncoderConfig",
    "ImageDecodeError",
    "Preprocessor",
    "check_shape",
    "decode_image",
    "encoder_fingerprint",
    "eval_transform",
    "fingerprint_of",
    "imagenet_state_dict",
    "list_image_files",
    "load_encoder",
    "load_imagenet_weights",
    "normalization_for",
    "open_image_file",
    "pick_device",
    "read_catalog",
    "read_image_list",
    "save_encoder",
    "sniff_format",
]
