"""Retrieval metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from chalicelib.metrics import (
    RetrievalMetrics,
    answer_similarity,
    cosine,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    retrieval_metrics,
)


def test_ndcg_hand_computed():
    # Relevant at ranks 1 and 3 of 3 relevant: DCG = 1 + 1/2; IDCG = 1 + 1/log2(3) + 1/2.
    ranked = ["a", "x", "b", "y"]
    expected = (1 + 0.5) / (1 + 1 / math.log2(3) + 0.5)
    assert ndcg_at_k(ranked, {"a", "b", "c"}) == pytest.approx(expected)
    assert ndcg_at_k(ranked, {"a", "b", "c"}) == pytest.approx(0.7039180890341347)


def test_ndcg_ideal_is_capped_at_k():
    relevant = {f"r{i}" for i in range(15)}
    perfect = [f"r{i}" for i in range(10)]
    assert ndcg_at_k(perfect, relevant) == pytest.approx(1.0)
    # Relevant documents past rank 10 do not count.
    assert ndcg_at_k([f"x{i}" for i in range(10)] + ["r0"], relevant) == 0.0


def test_ndcg_single_relevant_at_rank_2():
    assert ndcg_at_k(["x", "a"], ["a"]) == pytest.approx(1 / math.log2(3))


def test_recall_hand_computed():
    assert recall_at_k(["a", "x", "b"], {"a", "b", "c", "d"}) == pytest.approx(0.5)
    assert recall_at_k(["x"] * 3, {"a"}) == 0.0
    ranked = [f"x{i}" for i in range(10)] + ["a"]
    assert recall_at_k(ranked, {"a"}) == 0.0  # rank 11 is past the cutoff


def test_mrr_hand_computed():
    assert mrr_at_k(["x", "y", "a", "b"], {"a", "b"}) == pytest.approx(1 / 3)
    assert mrr_at_k(["a"], {"a"}) == 1.0
    assert mrr_at_k([f"x{i}" for i in range(10)] + ["a"], {"a"}) == 0.0


def test_duplicates_count_once():
    # A duplicate neither scores twice nor pushes later documents past the cutoff.
    assert recall_at_k(["a", "a", "b"], {"a", "b"}) == 1.0
    assert ndcg_at_k(["a", "a", "b"], {"a", "b"}) == pytest.approx(1.0)
    ranked = ["x"] * 5 + [f"y{i}" for i in range(8)] + ["a"]
    assert mrr_at_k(ranked, {"a"}) == pytest.approx(1 / 10)


def test_no_relevant_documents_scores_zero():
    assert ndcg_at_k(["a"], set()) == 0.0
    assert recall_at_k(["a"], set()) == 0.0
    assert mrr_at_k(["a"], set()) == 0.0


def test_retrieval_metrics_averages_judged_queries():
    rankings = [["a", "x"], ["x", "b"], ["z"]]
    relevant = [{"a"}, {"b", "c"}, set()]  # the third query is unjudged: left out
    metrics = retrieval_metrics(rankings, relevant)
    assert metrics.queries == 2
    assert metrics.mrr_at_10 == pytest.approx((1 + 0.5) / 2)
    assert metrics.recall_at_10 == pytest.approx((1 + 0.5) / 2)
    ndcg_second = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert metrics.ndcg_at_10 == pytest.approx((1 + ndcg_second) / 2)
    assert metrics.to_dict() == {
        "ndcg_at_10": metrics.ndcg_at_10,
        "recall_at_10": metrics.recall_at_10,
        "mrr_at_10": metrics.mrr_at_10,
        "queries": 2,
    }


def test_retrieval_metrics_edge_cases():
    assert retrieval_metrics([], []) == RetrievalMetrics(0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="rankings"):
        retrieval_metrics([["a"]], [])


def test_cosine_and_answer_similarity():
    assert cosine([1, 0], [0, 1]) == 0.0
    assert cosine([1, 1], [2, 2]) == pytest.approx(1.0)
    assert cosine([0, 0], [1, 0]) == 0.0
    answers = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    chunks = [[1.0, 0.0], [1.0, 1.0], None]  # the third question retrieved nothing
    assert answer_similarity(answers, chunks) == pytest.approx((1 + math.sqrt(0.5) + 0) / 3)
    assert answer_similarity([], []) == 0.0
    with pytest.raises(ValueError):
        answer_similarity([[1.0]], [])
    with pytest.raises(ValueError):
        cosine([1.0], [1.0, 2.0])


def test_answer_similarity_takes_numpy_rows():
    np = pytest.importorskip("numpy")
    answers = np.eye(3, dtype=np.float32)
    assert answer_similarity(answers, list(answers)) == pytest.approx(1.0)
    assert isinstance(answer_similarity(answers, list(answers)), float)
