"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from encoder.attributes import check_attributes
from index import AddResult, NearDuplicate, Product, SearchHit
from index.rerank import match_confidence
from index.thresholds import MatchThresholds

# Each product field as a client writes it, with its limits, written once: the JSON models below
# (ProductBase and its kin) and the form fields of POST /index take these types; 422 otherwise.
Sku = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Category = Annotated[str, StringConstraints(max_length=200)]
Price = Annotated[float, Field(ge=0, le=1e9)]
# a JSON object within the limits of encoder.attributes (no NaN or infinity, bounded size and nesting)
Attributes = Annotated[dict[str, Any], AfterValidator(check_attributes)]
MAX_IMAGES = 20  # photos per product, and per request that adds some


class ProductImageOut(BaseModel):
    id: int
    url: str


class ProductOut(BaseModel):
    id: int
    sku: str
    title: str
    category: str | None
    price: float | None
    attributes: dict[str, Any]
    image_url: str | None = Field(description="the product's first image")
    images: list[ProductImageOut]
    created_at: str
    updated_at: str

    @classmethod
    def from_product(cls, p: Product) -> ProductOut:
        return cls(
            id=p.id,
            sku=p.sku,
            title=p.title,
            category=p.category,
            price=p.price,
            attributes=p.attributes,
            image_url=f"/products/{p.id}/image" if p.images else None,
            images=[ProductImageOut(id=i.id, url=f"/products/{p.id}/images/{i.id}") for i in p.images],
            created_at=p.created_at,
            updated_at=p.updated_at,
        )


class CategoryOut(BaseModel):
    name: str
    products: int = Field(description="how many products the category holds")


class NearDuplicateOut(BaseModel):
    """A new image that nearly equals an image already in the catalog (or in the same request)."""

    image_index: int = Field(description="which uploaded image, 0-based")
    other_product_id: int | None = Field(description="the product it resembles; null: one in this request")
    other_sku: str
    other_image_id: int | None
    score: float = Field(description="cosine similarity")

    @classmethod
    def from_record(cls, d: NearDuplicate) -> NearDuplicateOut:
        return cls(
            image_index=d.image_index,
            other_product_id=d.other_product_id,
            other_sku=d.other_sku,
            other_image_id=d.other_image_id,
            score=d.score,
        )


class AddedProductOut(ProductOut):
    near_duplicates: list[NearDuplicateOut] = Field(
        default_factory=list, description="images that nearly equal stored ones (duplicate policy: report)"
    )

    @classmethod
    def from_added(cls, p: Product, duplicates: list[NearDuplicate]) -> AddedProductOut:
        return cls(
            **ProductOut.from_product(p).model_dump(),
            near_duplicates=[NearDuplicateOut.from_record(d) for d in duplicates],
        )


class ProductBase(BaseModel):
    """A product's metadata as a client writes it, each field within its limits; its photos come
    apart (uploads). ProductOut answers without the limits: a catalog built offline may differ."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku
    title: Title
    category: Category | None = None
    price: Price | None = None
    attributes: Attributes = Field(default_factory=dict)


class ProductFields(ProductBase):
    """PUT /products/{id}: every metadata field; those left out become empty."""


class ManifestItem(ProductBase):
    """One product of POST /index/batch; ``images`` names uploaded files by their filename."""

    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)


class BatchAdded(BaseModel):
    products: list[AddedProductOut]

    @classmethod
    def from_result(cls, result: AddResult) -> BatchAdded:
        """Each product with the near-duplicates among its own photos."""
        by_sku: dict[str, list[NearDuplicate]] = {}
        for d in result.near_duplicates:
            by_sku.setdefault(d.sku, []).append(d)
        return cls(products=[AddedProductOut.from_added(p, by_sku.get(p.sku, [])) for p in result.products])


class ProductUpdate(BaseModel):
    """PATCH /products/{id}: the fields to change; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku | None = None
    title: Title | None = None
    category: Category | None = None
    price: Price | None = None
    attributes: Attributes | None = None


class SearchResult(BaseModel):
    product_id: int
    sku: str
    title: str
    category: str | None
    price: float | None
    score: float = Field(
        description="what the ranking used: cosine similarity of the best-matching photo (image search, "
        "-1..1), bm25 relevance (text search) or the reciprocal-rank-fusion score (photo and text); a "
        "photo verified by local features keeps its cosine here (its evidence is in match_confidence "
        "and inliers, and it is answered first)"
    )
    image_url: str | None
    matched_image_id: int | None = Field(description="the product photo that matched the shopper's photo")
    match: Literal["strong", "weak", "none"] | None = Field(
        None,
        description="how good the photo match is, from thresholds calibrated on the catalog "
        "(docs/MATCHING.md); strong for a photo verified by local features; null for text-only results "
        "or an uncalibrated store",
    )
    inliers: int | None = Field(
        None,
        description="geometric re-ranking: local-feature matches between the shopper's photo and the "
        "matched product photo that fit one perspective view (RANSAC inliers); null when not checked",
    )
    match_confidence: float | None = Field(
        None,
        description="for a photo verified by local features only: 1 - 1/inliers (0.93 at 15 inliers, "
        "0.99 at 100); null otherwise (docs/MATCHING.md)",
    )

    @classmethod
    def from_hit(
        cls, h: SearchHit, thresholds: MatchThresholds | None = None, score: float | None = None
    ) -> SearchResult:
        result = cls.from_product(h.product, h.score if score is None else score, h.image_id)
        result.inliers = h.inliers
        if h.verified:
            result.match = "strong"
            result.match_confidence = match_confidence(h.inliers)
        elif thresholds is not None:
            result.match = thresholds.label(h.score)
        return result

    @classmethod
    def from_product(cls, p: Product, score: float, image_id: int | None = None) -> SearchResult:
        shown = image_id if image_id is not None else (p.images[0].id if p.images else None)
        return cls(
            product_id=p.id,
            sku=p.sku,
            title=p.title,
            category=p.category,
            price=p.price,
            score=round(score, 6),
            image_url=f"/products/{p.id}/images/{shown}" if shown is not None else None,
            matched_image_id=image_id,
        )


class SearchResponse(BaseModel):
    results: list[SearchResult]
    ranking: Literal["image", "text", "fused"] = Field("image", description="what ordered the results")
    took_ms: float
    encoder_fingerprint: str | None = Field(
        None, description="the encoder whose embeddings ranked the photos (as /health reports it)"
    )


class EncoderInfo(BaseModel):
    fingerprint: str
    arch: str
    image_size: int
    embed_dim: int


class HealthResponse(BaseModel):
    status: str
    device: str = Field(description="where the encoder runs: cpu or cuda")
    index_device: str = Field(description="where the FAISS index lives: cpu or gpu")
    index_type: str = Field(description="FAISS index type, e.g. Flat, HNSW32, IVF1024,PQ32,RFlat")
    encoder: EncoderInfo
    products: int
    vectors: int


class ReadyResponse(BaseModel):
    status: str = Field(description="ready, or degraded: serving, but searches may miss the newest writes")
    detail: str | None = Field(None, description="why it is degraded")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[Any] | None = Field(None, description="what the client may act on, e.g. the conflicts")


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error answers (its ``responses``), each in the one error shape."""
    return {status: {"model": ErrorResponse} for status in statuses}


class ReloadRequest(BaseModel):
    """POST /admin/reload: what to serve from now on; a field left out means the configured one."""

    model_config = ConfigDict(extra="forbid")

    encoder_path: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="encoder.pt on the server, under LOOKALIKE_RELOAD_ROOTS (LOOKALIKE_ENCODER_PATH)",
    )
    store_dir: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="a store built with that encoder, on the server under LOOKALIKE_RELOAD_ROOTS "
        "(LOOKALIKE_STORE_DIR)",
    )
    database_url: str | None = Field(
        None,
        max_length=4096,
        description="not accepted (422 database_url_not_accepted): the catalog's database comes only "
        "from the server's configuration (LOOKALIKE_DATABASE_URL)",
    )


class ServedOut(BaseModel):
    encoder_path: str
    store_dir: str
    fingerprint: str = Field(description="the encoder's fingerprint, as /health reports it")
    arch: str
    products: int


class ReloadResponse(BaseModel):
    changed: bool = Field(description="false: the request named the encoder and store already served")
    previous: ServedOut
    current: ServedOut
    drained: bool = Field(
        description="the previous pair's requests had finished and it was closed before this answer"
    )
    took_ms: float
