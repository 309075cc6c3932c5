"""Retrieval quality on the full CISI collection (1,460 documents, 76 judged queries)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import CISI, REPO

REFERENCE_DENSE_NDCG = 0.421  # shared/datasets/cisi/README.md, exact search


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    spec = importlib.util.spec_from_file_location("cisi_quality", REPO / "bench/cisi_quality.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    metrics, _ = bench.measure(tmp_path_factory.mktemp("kb"), CISI)
    return metrics


def test_all_judged_queries_are_evaluated(results):
    assert {metrics["queries"] for metrics in results.values()} == {76}


def test_dense_matches_the_exact_search_reference(results):
    assert results["dense"]["ndcg_at_10"] == pytest.approx(REFERENCE_DENSE_NDCG, abs=0.01)


def test_hybrid_is_at_least_as_good_as_dense(results):
    assert results["hybrid"]["ndcg_at_10"] >= results["dense"]["ndcg_at_10"]


def test_bm25_is_a_real_baseline(results):
    assert 0.30 < results["bm25"]["ndcg_at_10"] < results["hybrid"]["ndcg_at_10"]
