"""Document retrieval over a knowledge base (dense, BM25 or hybrid), and its evaluation.

Backends rank chunks; here chunks are fetched ``depth`` deep and aggregated into documents,
each ranked by its best chunk (:func:`chalicelib.kb.fusion.aggregate_documents`). The
embedding model is only touched for dense and hybrid search, and for answer similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.datasets.base import EvalItem
from chalicelib.kb.base import Chunk, ChunkHit, DocumentHit, KnowledgeBase
from chalicelib.kb.fusion import aggregate_documents
from chalicelib.metrics import answer_similarity, retrieval_metrics

if TYPE_CHECKING:
    from chalicelib.embeddings import Embedder

MODES = ("dense", "bm25", "hybrid")
DEFAULT_DEPTH = 100
"""Chunks fetched per ranking before they are grouped into documents."""


def _check(mode: str, k: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")


def _embedder(embedder: Embedder | None) -> Embedder:
    if embedder is not None:
        return embedder
    from chalicelib.embeddings import get_embedder

    return get_embedder()


def search(
    kb: KnowledgeBase,
    index: str,
    question: str,
    mode: str = "hybrid",
    k: int = 10,
    embedder: Embedder | None = None,
    *,
    vector: Sequence[float] | None = None,
    depth: int = DEFAULT_DEPTH,
) -> list[DocumentHit]:
    """The ``k`` best documents for ``question`` from ``index`` (an index or an alias).

    ``vector`` is the question's embedding when the caller already has it; otherwise dense and
    hybrid search embed the question with ``embedder`` (the process-wide one by default).
    """
    _check(mode, k)
    depth = max(depth, k)
    hits: list[ChunkHit]
    if mode == "bm25":
        hits = kb.bm25_search(index, question, depth)
    else:
        if vector is None:
            vector = _embedder(embedder).embed_query(question)
        if mode == "dense":
            hits = kb.dense_search(index, vector, depth)
        else:
            hits = kb.hybrid_search(index, question, vector, depth, depth=depth)
    return aggregate_documents(hits, k)


def evaluate(
    kb: KnowledgeBase,
    index: str,
    eval_items: Sequence[EvalItem],
    embedder: Embedder | None = None,
    mode: str = "hybrid",
    k: int = 10,
    depth: int = DEFAULT_DEPTH,
) -> dict[str, Any]:
    """Retrieval quality of ``index`` on a dataset's evaluation questions.

    Returns ``mode``, ``ndcg_at_10``, ``recall_at_10``, ``mrr_at_10`` and ``queries`` (the
    questions with judged documents, which the three metrics average over), plus
    ``answer_similarity`` when some questions carry a reference answer: the mean cosine
    similarity between each answer's embedding and the embedding of the text of the best chunk
    retrieved for its question. ``k`` documents are retrieved per question (metrics cut at 10).
    All questions are embedded in one batch.
    """
    _check(mode, k)
    items = list(eval_items)
    vectors: Any = None
    if mode != "bm25" and items:
        vectors = _embedder(embedder).embed([item.question for item in items])

    rankings: list[list[str]] = []
    best_chunks: list[Chunk | None] = []
    for i, item in enumerate(items):
        vector = None if vectors is None else vectors[i]
        hits = search(kb, index, item.question, mode, k, embedder, vector=vector, depth=depth)
        rankings.append([hit.doc_id for hit in hits])
        best_chunks.append(hits[0].chunks[0].chunk if hits and hits[0].chunks else None)

    judged = [i for i, item in enumerate(items) if item.relevant_ids]
    metrics = retrieval_metrics(
        [rankings[i] for i in judged], [items[i].relevant_ids for i in judged]
    )
    result: dict[str, Any] = {"mode": mode, **metrics.to_dict()}

    answered = [i for i, item in enumerate(items) if item.answer.strip()]
    if answered:
        found = [i for i in answered if best_chunks[i] is not None]
        texts = [items[i].answer for i in answered]
        texts += [best_chunks[i].text for i in found]  # type: ignore[union-attr]
        embedded = _embedder(embedder).embed(texts)
        answer_vectors = embedded[: len(answered)]
        chunk_rows = dict(zip(found, embedded[len(answered) :], strict=True))
        result["answer_similarity"] = answer_similarity(
            answer_vectors, [chunk_rows.get(i) for i in answered]
        )
    return result
