"""Documents into a knowledge-base index: chunk, embed, upsert, finalize."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chalicelib.chunking import chunk_documents
from chalicelib.datasets import Document
from chalicelib.embeddings import Embedder
from chalicelib.kb.base import KnowledgeBase

UPSERT_BATCH = 500
EMBED_SHARE = 0.9
"""Of the work reported through ``on_progress``; upserting takes the rest."""


@dataclass(frozen=True)
class IndexStats:
    documents: int
    chunks: int


def index_documents(
    kb: KnowledgeBase,
    index: str,
    documents: Sequence[Document],
    embedder: Embedder,
    on_progress: Callable[[float, int], None] | None = None,
    **chunk_options: int,
) -> IndexStats:
    """Index ``documents`` into an existing ``index``.

    ``on_progress(fraction, chunks_done)`` follows embedding, then upserting, batch by batch.
    """
    chunks = chunk_documents(documents, embedder.tokenizer, **chunk_options)
    total = len(chunks)

    def report(fraction: float) -> None:
        if on_progress is not None:
            on_progress(fraction, round(min(fraction / EMBED_SHARE, 1.0) * total))

    vectors = embedder.embed_chunks(chunks, on_progress=lambda done: report(EMBED_SHARE * done))
    for start in range(0, total, UPSERT_BATCH):
        end = min(start + UPSERT_BATCH, total)
        kb.upsert(index, chunks[start:end], vectors[start:end])
        report(EMBED_SHARE + (1 - EMBED_SHARE) * end / total)
    kb.finalize(index)
    return IndexStats(documents=len(documents), chunks=total)
