"""Reciprocal rank fusion and chunk-to-document aggregation."""

from __future__ import annotations

import pytest

from chalicelib.kb.base import Chunk, ChunkHit
from chalicelib.kb.fusion import RRF_K, aggregate_documents, reciprocal_rank_fusion


def h(doc: str, pos: int, score: float, title: str = "") -> ChunkHit:
    return ChunkHit(Chunk(doc, pos, f"{doc} text {pos}", title or doc.upper()), score)


def ids(hits):
    return [hit.chunk.chunk_id for hit in hits]


def test_rrf_sums_reciprocal_ranks():
    dense = [h("a", 0, 0.9), h("b", 0, 0.8), h("c", 0, 0.1)]
    sparse = [h("b", 0, 12.0), h("d", 0, 3.0)]
    fused = reciprocal_rank_fusion([dense, sparse])
    assert ids(fused) == ["b#0", "a#0", "d#0", "c#0"]
    scores = {hit.chunk.chunk_id: hit.score for hit in fused}
    assert scores["b#0"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["a#0"] == pytest.approx(1 / 61)
    assert scores["d#0"] == pytest.approx(1 / 62)
    assert scores["c#0"] == pytest.approx(1 / 63)


def test_rrf_ignores_raw_score_scales():
    # a huge BM25 score must not dominate: only ranks count
    dense = [h("a", 0, 0.99), h("b", 0, 0.98)]
    sparse = [h("b", 0, 1e9), h("a", 0, 1e-9)]
    fused = reciprocal_rank_fusion([dense, sparse])
    assert fused[0].score == pytest.approx(fused[1].score)
    assert ids(fused) == ["a#0", "b#0"]  # equal scores: ties broken by chunk id


def test_rrf_k_parameter_and_default():
    assert RRF_K == 60
    fused = reciprocal_rank_fusion([[h("a", 0, 1.0)]], k=1)
    assert fused[0].score == pytest.approx(1 / 2)


def test_rrf_keeps_chunk_payload_and_handles_empty():
    chunk = h("a", 2, 0.5, title="Title")
    (fused,) = reciprocal_rank_fusion([[chunk], []])
    assert fused.chunk == chunk.chunk
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


def test_rrf_identical_rankings_double_every_score():
    ranking = [h("a", 0, 1.0), h("b", 0, 0.5)]
    fused = reciprocal_rank_fusion([ranking, ranking])
    assert [hit.score for hit in fused] == pytest.approx([2 / 61, 2 / 62])


def test_aggregate_ranks_documents_by_best_chunk():
    hits = [h("a", 3, 0.9), h("b", 0, 0.8), h("a", 1, 0.7), h("c", 0, 0.2), h("b", 5, 0.1)]
    docs = aggregate_documents(hits, k=10)
    assert [d.doc_id for d in docs] == ["a", "b", "c"]
    assert [d.score for d in docs] == [0.9, 0.8, 0.2]
    assert [hit.chunk.position for hit in docs[0].chunks] == [3, 1]
    assert [hit.chunk.position for hit in docs[1].chunks] == [0, 5]
    assert docs[0].title == "A"


def test_aggregate_truncates_to_k_and_handles_empty():
    hits = [h(d, 0, 1.0 - i / 10) for i, d in enumerate("abcdef")]
    assert [d.doc_id for d in aggregate_documents(hits, k=2)] == ["a", "b"]
    assert aggregate_documents([], k=5) == []


def test_aggregate_after_fusion():
    dense = [h("a", 0, 0.9), h("b", 1, 0.8), h("a", 2, 0.7)]
    sparse = [h("b", 1, 5.0), h("a", 2, 4.0)]
    docs = aggregate_documents(reciprocal_rank_fusion([dense, sparse]), k=5)
    # b#1: 1/62 + 1/61; a#2: 1/63 + 1/62; a#0: 1/61
    assert [d.doc_id for d in docs] == ["b", "a"]
    assert ids(docs[1].chunks) == ["a#2", "a#0"]
