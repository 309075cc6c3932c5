"""Search and evaluation over a small in-memory knowledge base."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pytest

from chalicelib.datasets.base import EvalItem
from chalicelib.kb.base import Chunk, ChunkHit, KnowledgeBase
from chalicelib.retrieval import DEFAULT_DEPTH, evaluate, search

np = pytest.importorskip("numpy")

VOCAB = ["dewey", "classification", "library", "cats", "dogs", "citation", "index", "music"]


class WordEmbedder:
    """Bag of words over VOCAB, normalised; counts its calls."""

    dimension = len(VOCAB)

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str], batch_size: int = 32, on_progress=None):
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            words = re.findall(r"[a-z]+", text.lower())
            row = np.array([words.count(word) for word in VOCAB], dtype=np.float32)
            norm = np.linalg.norm(row)
            rows.append(row / norm if norm else row)
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dimension)

    def embed_query(self, text: str):
        return self.embed([text])[0]


class MemoryKB(KnowledgeBase):
    """Exact cosine search, and term-overlap counting standing in for BM25."""

    def __init__(self, chunks: list[Chunk], embedder: WordEmbedder) -> None:
        self.chunks = chunks
        self.vectors = embedder.embed([f"{c.title}\n{c.text}" for c in chunks])
        embedder.calls.clear()
        self.requests: list[tuple[str, str, int]] = []

    def dense_search(self, index: str, vector: Sequence[float], k: int) -> list[ChunkHit]:
        self.requests.append(("dense", index, k))
        scores = self.vectors @ np.asarray(vector, dtype=np.float32)
        order = sorted(range(len(self.chunks)), key=lambda i: (-scores[i], i))
        return [ChunkHit(self.chunks[i], float(scores[i])) for i in order[:k] if scores[i] > 0]

    def bm25_search(self, index: str, query: str, k: int) -> list[ChunkHit]:
        self.requests.append(("bm25", index, k))
        terms = set(re.findall(r"[a-z]+", query.lower()))

        def score(chunk: Chunk) -> int:
            return len(terms & set(re.findall(r"[a-z]+", f"{chunk.title} {chunk.text}".lower())))

        scored = [(score(c), -i, c) for i, c in enumerate(self.chunks)]
        scored.sort(key=lambda item: (-item[0], -item[1]))
        return [ChunkHit(c, float(s)) for s, _, c in scored[:k] if s > 0]

    def create_index(self, name: str, dimension: int) -> None:
        raise NotImplementedError

    def upsert(self, index, chunks, vectors) -> None:
        raise NotImplementedError

    def count(self, index: str) -> int:
        return len(self.chunks)

    def delete_index(self, name: str) -> None:
        raise NotImplementedError

    def set_alias(self, alias: str, index: str) -> str | None:
        raise NotImplementedError

    def remove_alias(self, alias: str) -> str | None:
        raise NotImplementedError

    def resolve_alias(self, alias: str) -> str | None:
        return "v1"

    def list_indexes(self, prefix: str = "") -> list[str]:
        return ["v1"]

    def finalize(self, index: str) -> None:
        pass


# Only the search half of the interface matters here; methods the interface gains later need
# no fake.
MemoryKB.__abstractmethods__ = frozenset()

CHUNKS = [
    Chunk("d1", 0, "The Dewey classification.", "Dewey"),
    Chunk("d1", 1, "Dewey again, in the library.", "Dewey"),
    Chunk("d2", 0, "Cats and dogs.", "Pets"),
    Chunk("d3", 0, "Citation index of papers.", "Citations"),
    Chunk("d4", 0, "Music in the library.", "Music"),
]


@pytest.fixture
def embedder() -> WordEmbedder:
    return WordEmbedder()


@pytest.fixture
def kb(embedder) -> MemoryKB:
    return MemoryKB(CHUNKS, embedder)


def test_dense_search_ranks_documents_by_best_chunk(kb, embedder):
    hits = search(kb, "alias", "dewey classification", "dense", 10, embedder)
    assert [hit.doc_id for hit in hits][:1] == ["d1"]
    assert len({hit.doc_id for hit in hits}) == len(hits)  # each document once
    d1 = hits[0]
    assert d1.title == "Dewey"
    assert [c.chunk.position for c in d1.chunks] == [0, 1]  # both chunks, best first
    assert d1.score == d1.chunks[0].score
    assert kb.requests == [("dense", "alias", DEFAULT_DEPTH)]


def test_k_limits_documents_and_depth_is_at_least_k(kb, embedder):
    hits = search(kb, "v1", "library", "bm25", 1, embedder)
    assert len(hits) == 1
    search(kb, "v1", "library", "bm25", 5, embedder, depth=2)
    assert kb.requests[-1] == ("bm25", "v1", 5)


def test_bm25_never_embeds(kb, monkeypatch):
    import chalicelib.embeddings

    def no_model():
        raise AssertionError("BM25 search must not load the model")

    monkeypatch.setattr(chalicelib.embeddings, "get_embedder", no_model)
    hits = search(kb, "v1", "citation index", "bm25", 10)
    assert hits[0].doc_id == "d3"


def test_hybrid_fuses_dense_and_bm25(kb, embedder):
    hits = search(kb, "v1", "music library", "hybrid", 3, embedder)
    assert hits[0].doc_id == "d4"  # first in both rankings
    assert sorted(request[0] for request in kb.requests) == ["bm25", "dense"]
    assert all(request[2] == DEFAULT_DEPTH for request in kb.requests)
    assert len(hits) <= 3


def test_given_vector_is_used_instead_of_embedding(kb, embedder):
    vector = embedder.embed_query("cats")
    embedder.calls.clear()
    hits = search(kb, "v1", "ignored words", "dense", 10, embedder, vector=vector)
    assert hits[0].doc_id == "d2"
    assert embedder.calls == []


def test_invalid_arguments(kb, embedder):
    with pytest.raises(ValueError, match="mode must be one of"):
        search(kb, "v1", "q", "sparse", 10, embedder)
    with pytest.raises(ValueError, match="k must be positive"):
        search(kb, "v1", "q", "dense", 0, embedder)
    with pytest.raises(ValueError, match="mode"):
        evaluate(kb, "v1", [], embedder, mode="nope")


ITEMS = [
    EvalItem("dewey classification", ("d1",)),  # d1 first
    EvalItem("cats", ("d2", "d9")),  # d2 first; d9 is never found
    EvalItem("citation library", ("d4",)),  # d4 after d3 in dense
]


def test_evaluate_dense_metrics_and_one_batch_of_questions(kb, embedder):
    result = evaluate(kb, "v1", ITEMS, embedder, mode="dense")
    assert embedder.calls == [[item.question for item in ITEMS]]  # one batch, no answers
    rankings = [
        [hit.doc_id for hit in search(kb, "v1", item.question, "dense", 10, embedder)]
        for item in ITEMS
    ]
    assert rankings[1][0] == "d2"
    rank_d4 = rankings[2].index("d4") + 1
    assert rank_d4 > 1
    ndcg = [1.0, 1 / (1 + 1 / math.log2(3)), 1 / math.log2(rank_d4 + 1)]
    assert result == {
        "mode": "dense",
        "ndcg_at_10": pytest.approx(sum(ndcg) / 3),
        "recall_at_10": pytest.approx((1 + 0.5 + 1) / 3),
        "mrr_at_10": pytest.approx((1 + 1 + 1 / rank_d4) / 3),
        "queries": 3,
    }


def test_evaluate_bm25_needs_no_embedder(kb, monkeypatch):
    import chalicelib.embeddings

    monkeypatch.setattr(chalicelib.embeddings, "get_embedder", lambda: 1 / 0)
    result = evaluate(kb, "v1", ITEMS, None, mode="bm25")
    assert result["mode"] == "bm25"
    assert result["queries"] == 3
    # Term overlap ranks d1, d3, d4 for "citation library" (ties in index order).
    assert result["mrr_at_10"] == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert "answer_similarity" not in result


def test_evaluate_answer_similarity(kb, embedder):
    items = [
        EvalItem("dewey", answer="dewey classification"),  # top chunk d1#0 matches exactly
        EvalItem("cats", answer="music"),  # top chunk is about cats and dogs: orthogonal
        EvalItem("zebra", answer="dewey"),  # nothing retrieved: scores 0
        EvalItem("no answer, no judgments"),
    ]
    result = evaluate(kb, "v1", items, embedder, mode="dense")
    assert result["queries"] == 0
    assert result["answer_similarity"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    # Questions in one batch, then answers and top chunk texts in another.
    assert len(embedder.calls) == 2
    assert embedder.calls[1] == [
        "dewey classification",
        "music",
        "dewey",
        "The Dewey classification.",
        "Cats and dogs.",
    ]


def test_evaluate_with_the_real_model(kb):
    from chalicelib.embeddings import get_embedder

    real = get_embedder()
    kb = MemoryKB(CHUNKS, WordEmbedder())
    kb.vectors = real.embed([f"{c.title}\n{c.text}" for c in CHUNKS])
    result = evaluate(kb, "v1", ITEMS, real, mode="hybrid")
    assert result["queries"] == 3
    assert 0.5 < result["ndcg_at_10"] <= 1.0
