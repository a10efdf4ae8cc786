"""The shared leaf: encoder model, preprocessing, checkpoints. Imports nothing of ours."""

from encoder.checkpoint import encoder_fingerprint, fingerprint_of, load_encoder, save_encoder
from encoder.crop import Crop
from encoder.device import pick_device
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
from encoder.model import Encoder, EncoderConfig
from encoder.preprocess import Preprocessor
from encoder.pretrained import imagenet_state_dict, load_imagenet_weights
from encoder.transforms import eval_transform, normalization_for

__all__ = [
    "MAX_ASPECT",
    "MIN_SIDE",
    "Encoder",
    "EncoderConfig",
    "ImageDecodeError",
    "Crop",
    "check_shape",
    "Preprocessor",
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
    "save_encoder",
    "sniff_format",
]
