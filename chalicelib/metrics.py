"""Retrieval-quality metrics over ranked document ids (pure Python; no torch, numpy optional).

Relevance is binary. Each metric is computed per query, then averaged over the queries that
have at least one relevant document. Duplicate ids in a ranking count once, at their best rank.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

CUTOFF = 10


def _top(ranked: Sequence[str], k: int) -> list[str]:
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
            if len(top) == k:
                break
    return top


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = CUTOFF) -> float:
    """DCG of the top k (gain 1 per relevant doc, discount log2(rank + 1)) over the ideal DCG,
    which puts min(|relevant|, k) relevant documents first. 0.0 when nothing is relevant."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, doc_id in enumerate(_top(ranked, k), start=1)
        if doc_id in relevant
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = CUTOFF) -> float:
    """Share of the relevant documents found in the top k."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return sum(1 for doc_id in _top(ranked, k) if doc_id in relevant) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = CUTOFF) -> float:
    """1 / rank of the first relevant document in the top k, else 0."""
    relevant = set(relevant)
    for rank, doc_id in enumerate(_top(ranked, k), start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


@dataclass(frozen=True)
class RetrievalMetrics:
    """Means over ``queries`` judged queries."""

    ndcg_at_10: float
    recall_at_10: float
    mrr_at_10: float
    queries: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def retrieval_metrics(
    rankings: Sequence[Sequence[str]], relevant: Sequence[Collection[str]]
) -> RetrievalMetrics:
    """nDCG@10, Recall@10 and MRR@10 averaged over the queries with relevant documents.

    ``rankings[i]`` is the ranked doc ids retrieved for query i, ``relevant[i]`` its judged ids.
    """
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings but {len(relevant)} relevance sets")
    judged = [(ranked, set(rel)) for ranked, rel in zip(rankings, relevant, strict=True) if rel]
    if not judged:
        return RetrievalMetrics(0.0, 0.0, 0.0, 0)
    n = len(judged)
    return RetrievalMetrics(
        ndcg_at_10=sum(ndcg_at_k(ranked, rel) for ranked, rel in judged) / n,
        recall_at_10=sum(recall_at_k(ranked, rel) for ranked, rel in judged) / n,
        mrr_at_10=sum(mrr_at_k(ranked, rel) for ranked, rel in judged) / n,
        queries=n,
    )


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0.0 if either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"vectors of different sizes: {len(a)} and {len(b)}")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return float(dot / norm) if norm else 0.0


def answer_similarity(
    answer_vectors: Sequence[Sequence[float]], chunk_vectors: Sequence[Sequence[float] | None]
) -> float:
    """Mean cosine similarity between each reference answer's embedding and the embedding of
    the top chunk retrieved for its question; a question that retrieved nothing (None) scores 0.
    0.0 for no items."""
    if len(answer_vectors) != len(chunk_vectors):
        raise ValueError(f"{len(answer_vectors)} answers but {len(chunk_vectors)} chunk vectors")
    if len(answer_vectors) == 0:
        return 0.0
    total = sum(
        0.0 if chunk is None else cosine(answer, chunk)
        for answer, chunk in zip(answer_vectors, chunk_vectors, strict=True)
    )
    return total / len(answer_vectors)
