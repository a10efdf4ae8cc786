"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from index import Product


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


class SearchResult(BaseModel):
    product_id: int
    sku: str
    title: str
    category: str | None
    price: float | None
    score: float = Field(description="cosine similarity of the best-matching product image, -1..1")
    image_url: str
    matched_image_id: int


class SearchResponse(BaseModel):
    results: list[SearchResult]
    took_ms: float


class EncoderInfo(BaseModel):
    fingerprint: str
    arch: str
    image_size: int
    embed_dim: int


class HealthResponse(BaseModel):
    status: str
    device: str = Field(description="where the encoder runs: cpu or cuda")
    index_device: str = Field(description="where the FAISS index lives: cpu or gpu")
    encoder: EncoderInfo
    products: int
    vectors: int


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
