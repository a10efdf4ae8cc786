"""The catalog-wide local-feature index: codebook (visual words and the descriptors' product
quantiser), compact per-photo features, inverted file, ASMK kernel, verification, and the cache
that keeps it in step with the database (``LocalIndex``)."""

from index.local.cache import LocalIndex, LocalMatches, features_kind
from index.local.codebook import Codebook
from index.local.compact import CompactFeatures
from index.local.inverted_file import InvertedFile

__all__ = ["Codebook", "CompactFeatures", "InvertedFile", "LocalIndex", "LocalMatches", "features_kind"]
