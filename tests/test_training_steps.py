"""Pieces of the steps' work that need no AWS: waiting for a count, the title check."""

from __future__ import annotations

import pytest

from chalicelib import training
from chalicelib.datasets import Document
from chalicelib.kb.base import Chunk, ChunkHit, DocumentHit


class CountingKB:
    """Counts that settle over a few reads, as OpenSearch Serverless's do."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    def count(self, alias: str) -> int:
        return self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]


def test_the_count_is_awaited_until_it_settles(monkeypatch):
    monkeypatch.setattr(training, "COUNT_POLL_SECONDS", 0)
    assert training._settled_count(CountingKB([3, 5, 10]), "a", 10) == 10


def test_a_count_that_never_settles_is_reported_as_it_is(monkeypatch):
    monkeypatch.setattr(training, "COUNT_SETTLE_SECONDS", 0)
    assert training._settled_count(CountingKB([3, 5, 10]), "a", 10) == 3


def hits_for(found: set[str]):
    def search(kb, alias, question, mode, k, embedder):
        doc_id = question.split()[-1]
        if doc_id not in found:
            return []
        chunk = ChunkHit(Chunk(doc_id, 0, "text", question), 1.0)
        return [DocumentHit(doc_id, question, 1.0, (chunk,))]

    return search


def test_most_documents_must_be_found_by_their_own_titles(monkeypatch):
    docs = [Document(str(i), "text", f"title {i}") for i in range(4)]
    monkeypatch.setattr(training, "search", hits_for({"0", "1"}))
    training._check_samples(None, "a", docs, None)
    monkeypatch.setattr(training, "search", hits_for({"0"}))
    with pytest.raises(training.TrainingCheckFailed, match="1, 2, 3 are not among the top 10"):
        training._check_samples(None, "a", docs, None)
