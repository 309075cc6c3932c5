"""Rank fusion and chunk-to-document aggregation, shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.kb.base import ChunkHit, DocumentHit

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[ChunkHit]], k: int = RRF_K
) -> list[ChunkHit]:
    """Fuse rankings by 1/(k + rank): scale-free, so BM25 and cosine scores need no normalising."""
    scores: dict[str, float] = {}
    chunks: dict[str, ChunkHit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = hit.chunk.chunk_id
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            chunks.setdefault(key, hit)
    ordered = sorted(scores, key=lambda key: (-scores[key], key))
    return [ChunkHit(chunks[key].chunk, scores[key]) for key in ordered]


def aggregate_documents(hits: Sequence[ChunkHit], k: int) -> list[DocumentHit]:
    """Rank documents by their best chunk (hits must be best first); keep each document's chunks."""
    grouped: dict[str, list[ChunkHit]] = {}
    for hit in hits:
        grouped.setdefault(hit.chunk.doc_id, []).append(hit)
    docs = [
        DocumentHit(doc_id, group[0].chunk.title, group[0].score, tuple(group))
        for doc_id, group in grouped.items()
    ]
    docs.sort(key=lambda doc: -doc.score)
    return docs[:k]
