"""The catalog's writes, one module per use case, between the HTTP routes and the store: each
reads and embeds the uploaded photos, asks the store, and lets its refusals rise (app/errors.py
turns them into answers)."""

from app.usecases.add_batch import add_batch
from app.usecases.add_product import add_product
from app.usecases.photos import EmbeddedPhotos, PhotoEmbedder, PhotosDep
from app.usecases.set_images import set_images

__all__ = [
    "EmbeddedPhotos",
    "PhotoEmbedder",
    "PhotosDep",
    "add_batch",
    "add_product",
    "set_images",
]
