"""OpenSearchKnowledgeBase against a real cluster or Serverless collection.

Runs only when OPENSEARCH_URL is set (e.g. http://localhost:9200, or an aoss/es endpoint
with OPENSEARCH_SERVICE and AWS credentials in the environment)::

    OPENSEARCH_URL=http://localhost:9200 pytest -m integration tests/integration
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

from chalicelib.config import settings
from chalicelib.kb import Chunk, KnowledgeBaseError
from chalicelib.kb.opensearch import OpenSearchKnowledgeBase

T = TypeVar("T")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("OPENSEARCH_URL"), reason="OPENSEARCH_URL not set"),
]

DIM = 8


def unit(*values: float) -> list[float]:
    v = list(values) + [0.0] * (DIM - len(values))
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


CHUNKS = [
    Chunk("marathon", 0, "Runners train for months before running a marathon.", "Marathon"),
    Chunk("pasta", 0, "Boil the spaghetti in salted water for nine minutes.", "Pasta recipes"),
    Chunk("cafe", 0, "The café serves espresso and croissants every morning.", "Coffee shops"),
]
VECTORS = [unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)]


def eventually(check: Callable[[], T], timeout: float = 90.0) -> T:
    """Serverless makes writes searchable after a few seconds: poll until ``check`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, KnowledgeBaseError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.fixture
def kb():
    return OpenSearchKnowledgeBase.from_settings(settings())


@pytest.fixture
def prefix(kb):
    name = f"kbtest-{uuid.uuid4().hex[:8]}"
    yield name
    for index in kb.list_indexes(name):
        kb.delete_index(index)


@pytest.fixture
def loaded(kb, prefix):
    index = f"{prefix}-v1"
    kb.create_index(index, DIM)
    kb.upsert(index, CHUNKS, VECTORS)
    kb.finalize(index)
    eventually(lambda: _assert_equal(kb.count(index), len(CHUNKS)))
    return index


def _assert_equal(actual, expected):
    assert actual == expected, (actual, expected)
    return actual


def ids(hits):
    return [hit.chunk.chunk_id for hit in hits]


def test_dense_search_returns_cosine(kb, loaded):
    hits = eventually(lambda: kb.dense_search(loaded, unit(1, 0.2, 0), 3))
    assert ids(hits)[0] == "marathon#0"
    assert hits[0].score == pytest.approx(1 / (1.04**0.5), abs=1e-3)
    assert hits[0].chunk == CHUNKS[0]


def test_bm25_stems_folds_and_searches_title(kb, loaded):
    assert ids(eventually(lambda: kb.bm25_search(loaded, "run", 3))) == ["marathon#0"]
    assert ids(kb.bm25_search(loaded, "cafe", 3)) == ["cafe#0"]
    assert ids(kb.bm25_search(loaded, "recipes", 3)) == ["pasta#0"]


def test_hybrid(kb, loaded):
    hits = eventually(lambda: kb.hybrid_search(loaded, "spaghetti", unit(0, 1, 0), 2))
    assert ids(hits)[0] == "pasta#0"


def test_upsert_replaces_by_chunk_id(kb, loaded):
    new = Chunk("pasta", 0, "Risotto needs arborio rice.", "Rice")
    kb.upsert(loaded, [new], [unit(0, 1, 0)])
    kb.finalize(loaded)

    def replaced():
        assert ids(kb.bm25_search(loaded, "arborio", 3)) == ["pasta#0"]
        assert kb.bm25_search(loaded, "spaghetti", 3) == []
        assert kb.count(loaded) == len(CHUNKS)

    eventually(replaced)


def test_alias_swap(kb, loaded, prefix):
    v2 = f"{prefix}-v2"
    kb.create_index(v2, DIM)
    kb.upsert(v2, [Chunk("only", 0, "version two")], [unit(1)])
    kb.finalize(v2)
    alias = f"{prefix}-live"
    assert kb.set_alias(alias, loaded) is None
    assert kb.resolve_alias(alias) == loaded
    assert kb.set_alias(alias, v2) == loaded
    assert kb.resolve_alias(alias) == v2
    eventually(lambda: _assert_equal(kb.count(alias), 1))
    assert kb.list_indexes(prefix) == [loaded, v2]
    assert kb.remove_alias(alias) == v2
    assert kb.resolve_alias(alias) is None


def test_missing_index_errors(kb, prefix):
    with pytest.raises(KnowledgeBaseError, match=prefix):
        kb.count(f"{prefix}-missing")
    assert kb.resolve_alias(f"{prefix}-nothing") is None
    kb.delete_index(f"{prefix}-missing")
