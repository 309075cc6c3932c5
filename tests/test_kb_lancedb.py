"""LanceDBKnowledgeBase against a real LanceDB folder in tmp_path (no model, no network)."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from chalicelib.kb import Chunk, KnowledgeBaseError
from chalicelib.kb.lancedb import ALIAS_FILE, LanceDBKnowledgeBase

DIM = 8


def unit(*values: float) -> list[float]:
    v = np.zeros(DIM, dtype=np.float64)
    v[: len(values)] = values
    return (v / np.linalg.norm(v)).tolist()


CHUNKS = [
    Chunk("marathon", 0, "Runners train for months before running a marathon.", "Marathon"),
    Chunk("marathon", 1, "Carbohydrate loading helps long distance runners.", "Marathon"),
    Chunk("pasta", 0, "Boil the spaghetti in salted water for nine minutes.", "Pasta recipes"),
    Chunk("cafe", 0, "The café serves espresso and croissants every morning.", "Coffee shops"),
    Chunk("cats", 0, "A cat sleeps most of the day on a warm mat.", "Cats"),
]
VECTORS = [
    unit(1, 0, 0),
    unit(0.9, 0.1, 0),
    unit(0, 1, 0),
    unit(0, 0, 1),
    unit(0.2, 0.5, 0.5),
]


@pytest.fixture
def kb(tmp_path):
    return LanceDBKnowledgeBase(tmp_path / "db")


@pytest.fixture
def loaded(kb):
    kb.create_index("kb-v1", DIM)
    kb.upsert("kb-v1", CHUNKS, VECTORS)
    kb.finalize("kb-v1")
    return kb


def ids(hits):
    return [hit.chunk.chunk_id for hit in hits]


def test_create_upsert_count(kb):
    kb.create_index("kb-v1", DIM)
    assert kb.count("kb-v1") == 0
    kb.upsert("kb-v1", CHUNKS, VECTORS)
    assert kb.count("kb-v1") == len(CHUNKS)


def test_create_existing_index_fails(kb):
    kb.create_index("kb-v1", DIM)
    with pytest.raises(KnowledgeBaseError, match="kb-v1"):
        kb.create_index("kb-v1", DIM)


@pytest.mark.parametrize("name", ["", "bad name", "../escape", "_hidden", "a/b"])
def test_invalid_index_names_rejected(kb, name):
    with pytest.raises(KnowledgeBaseError, match="invalid name"):
        kb.create_index(name, DIM)


def test_dense_search_scores_are_cosine_similarity(loaded):
    hits = loaded.dense_search("kb-v1", unit(1, 0, 0), 3)
    assert ids(hits) == ["marathon#0", "marathon#1", "cats#0"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[1].score == pytest.approx(float(np.dot(unit(1, 0, 0), unit(0.9, 0.1, 0))), abs=1e-6)
    assert hits[0].chunk == CHUNKS[0]  # round-trips every field
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_dense_search_matches_exact_numpy_search(kb):
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(300, 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    chunks = [Chunk(f"d{i}", 0, f"text {i}") for i in range(len(matrix))]
    kb.create_index("big", 384)
    kb.upsert("big", chunks, matrix.tolist())
    query = rng.normal(size=384).astype(np.float32)
    query /= np.linalg.norm(query)
    expected = np.argsort(-(matrix @ query))[:10]
    hits = kb.dense_search("big", query.tolist(), 10)
    assert ids(hits) == [f"d{i}#0" for i in expected]
    assert [h.score for h in hits] == pytest.approx((matrix @ query)[expected].tolist(), abs=1e-5)


def test_dense_search_wrong_dimension_is_an_error(loaded):
    with pytest.raises(KnowledgeBaseError):
        loaded.dense_search("kb-v1", [1.0, 0.0], 3)


def test_bm25_stems_folds_and_ranks(loaded):
    hits = loaded.bm25_search("kb-v1", "run", 5)
    # "running"/"runners" stem to "run"-words; only the marathon chunks mention running
    assert ids(hits)[0] == "marathon#0"
    assert {h.chunk.doc_id for h in hits} == {"marathon"}
    assert all(h.score > 0 for h in hits)
    # ASCII folding: "cafe" matches "café"; case-insensitive
    assert ids(loaded.bm25_search("kb-v1", "CAFE", 5)) == ["cafe#0"]


def test_bm25_searches_title_and_sums_fields(loaded):
    # "recipes" appears only in a title
    assert ids(loaded.bm25_search("kb-v1", "recipes", 5)) == ["pasta#0"]
    # "marathon" is in both chunks' titles, and in the text of chunk 0 only: summed fields
    hits = loaded.bm25_search("kb-v1", "marathon", 5)
    assert ids(hits) == ["marathon#0", "marathon#1"]
    assert hits[0].score > hits[1].score


def test_bm25_stop_words_and_blank_queries_match_nothing(loaded):
    assert loaded.bm25_search("kb-v1", "the and of", 5) == []
    assert loaded.bm25_search("kb-v1", "   ", 5) == []
    assert loaded.bm25_search("kb-v1", "run", 0) == []


def test_bm25_query_syntax_is_not_interpreted(loaded):
    assert ids(loaded.bm25_search("kb-v1", 'espresso AND ("unbalanced', 5)) == ["cafe#0"]


def test_bm25_before_finalize_is_an_error(kb):
    kb.create_index("kb-v1", DIM)
    kb.upsert("kb-v1", CHUNKS, VECTORS)
    with pytest.raises(KnowledgeBaseError, match="finalize"):
        kb.bm25_search("kb-v1", "run", 5)


def test_rows_upserted_after_finalize_are_still_found(loaded):
    loaded.upsert("kb-v1", [Chunk("late", 0, "Espresso machines need descaling.")], [unit(0, 0, 1)])
    assert "late#0" in ids(loaded.bm25_search("kb-v1", "espresso", 5))
    assert "late#0" in ids(loaded.dense_search("kb-v1", unit(0, 0, 1), 2))


def test_hybrid_search_fuses_both_rankings(loaded):
    # dense ranks cats first and pasta lower; BM25 finds only pasta. RRF (k=60): pasta gets
    # 1/61 from BM25 plus a dense share, cats only 1/61, so pasta wins and cats is second.
    hits = loaded.hybrid_search("kb-v1", "spaghetti", unit(0.2, 0.5, 0.5), k=3)
    assert ids(hits)[:2] == ["pasta#0", "cats#0"]
    assert hits[1].score == pytest.approx(1 / 61)
    assert 1 / 61 < hits[0].score < 2 / 61
    assert len(hits) == 3


def test_upsert_replaces_by_chunk_id(loaded):
    new = Chunk("pasta", 0, "Risotto needs arborio rice and patience.", "Rice")
    loaded.upsert("kb-v1", [new], [unit(1, 0, 0)])
    assert loaded.count("kb-v1") == len(CHUNKS)
    top = loaded.dense_search("kb-v1", unit(1, 0, 0), 5)
    assert next(h.chunk for h in top if h.chunk.chunk_id == "pasta#0") == new
    loaded.finalize("kb-v1")
    assert ids(loaded.bm25_search("kb-v1", "arborio", 5)) == ["pasta#0"]
    assert loaded.bm25_search("kb-v1", "spaghetti", 5) == []


def test_upsert_duplicate_ids_in_one_batch_keeps_last(kb):
    kb.create_index("kb-v1", DIM)
    first, last = Chunk("d", 0, "first"), Chunk("d", 0, "last")
    kb.upsert("kb-v1", [first, last], [unit(1), unit(0, 1)])
    assert kb.count("kb-v1") == 1
    assert kb.dense_search("kb-v1", unit(0, 1), 1)[0].chunk.text == "last"


def test_upsert_validates_lengths_and_dimension(kb):
    kb.create_index("kb-v1", DIM)
    with pytest.raises(KnowledgeBaseError, match="vectors"):
        kb.upsert("kb-v1", CHUNKS, VECTORS[:2])
    with pytest.raises(KnowledgeBaseError, match="dims"):
        kb.upsert("kb-v1", CHUNKS[:1], [[1.0, 0.0]])
    kb.upsert("kb-v1", [], [])
    assert kb.count("kb-v1") == 0


def test_alias_set_swap_resolve_and_search(loaded):
    loaded.create_index("kb-v2", DIM)
    loaded.upsert("kb-v2", [Chunk("only", 0, "Version two text.", "V2")], [unit(1)])
    loaded.finalize("kb-v2")

    assert loaded.resolve_alias("live") is None
    assert loaded.set_alias("live", "kb-v1") is None
    assert loaded.resolve_alias("live") == "kb-v1"
    assert loaded.count("live") == len(CHUNKS)
    assert ids(loaded.bm25_search("live", "spaghetti", 3)) == ["pasta#0"]

    assert loaded.set_alias("live", "kb-v2") == "kb-v1"
    assert loaded.resolve_alias("live") == "kb-v2"
    assert loaded.count("live") == 1
    assert ids(loaded.dense_search("live", unit(1), 3)) == ["only#0"]
    assert ids(loaded.hybrid_search("live", "version", unit(1), 3)) == ["only#0"]
    # pointing at the same index again is a no-op that reports it
    assert loaded.set_alias("live", "kb-v2") == "kb-v2"


def test_remove_alias(loaded):
    assert loaded.remove_alias("live") is None  # unset: not an error
    loaded.set_alias("live", "kb-v1")
    assert loaded.remove_alias("live") == "kb-v1"
    assert loaded.resolve_alias("live") is None
    with pytest.raises(KnowledgeBaseError, match="live"):
        loaded.count("live")
    assert loaded.count("kb-v1") == len(CHUNKS)  # the index stays


def test_alias_persists_across_instances(loaded, tmp_path):
    loaded.set_alias("live", "kb-v1")
    again = LanceDBKnowledgeBase(tmp_path / "db")
    assert again.resolve_alias("live") == "kb-v1"
    assert again.count("live") == len(CHUNKS)


def test_alias_errors(loaded):
    with pytest.raises(KnowledgeBaseError, match="nope"):
        loaded.set_alias("live", "nope")
    with pytest.raises(KnowledgeBaseError, match="kb-v1"):
        loaded.set_alias("kb-v1", "kb-v1")  # an index name cannot become an alias
    loaded.set_alias("live", "kb-v1")
    with pytest.raises(KnowledgeBaseError, match="live"):
        loaded.create_index("live", DIM)  # nor an alias name an index


@pytest.mark.parametrize(
    "call",
    [
        lambda kb: kb.count("missing"),
        lambda kb: kb.dense_search("missing", unit(1), 3),
        lambda kb: kb.bm25_search("missing", "run", 3),
        lambda kb: kb.upsert("missing", CHUNKS[:1], VECTORS[:1]),
        lambda kb: kb.finalize("missing"),
    ],
)
def test_missing_index_or_alias_errors_name_it(loaded, call):
    with pytest.raises(KnowledgeBaseError, match="missing"):
        call(loaded)


def test_delete_index_and_dangling_alias(loaded):
    loaded.set_alias("live", "kb-v1")
    loaded.delete_index("kb-v1")
    assert loaded.list_indexes() == []
    assert loaded.resolve_alias("live") is None  # aliases go with their index
    with pytest.raises(KnowledgeBaseError, match="live"):
        loaded.count("live")
    loaded.delete_index("kb-v1")  # missing: not an error
    loaded.delete_index("never-existed")


def test_list_indexes_with_prefix(kb):
    for name in ["minion-a-v2", "minion-a-v1", "minion-b-v1", "other"]:
        kb.create_index(name, DIM)
    kb.set_alias("minion-a", "minion-a-v2")
    assert kb.list_indexes() == ["minion-a-v1", "minion-a-v2", "minion-b-v1", "other"]
    assert kb.list_indexes("minion-a") == ["minion-a-v1", "minion-a-v2"]
    assert kb.list_indexes("zzz") == []


def test_list_indexes_pages_past_default_page_size(kb):
    names = [f"idx-{i:02d}" for i in range(25)]
    for name in names:
        kb.create_index(name, 2)
    assert kb.list_indexes("idx-") == names


def test_alias_file_is_json_and_left_untouched_when_write_fails(loaded, tmp_path, monkeypatch):
    loaded.set_alias("live", "kb-v1")
    path = tmp_path / "db" / ALIAS_FILE
    before = path.read_text()
    assert json.loads(before) == {"live": "kb-v1"}
    loaded.create_index("kb-v2", DIM)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        loaded.set_alias("live", "kb-v2")
    assert path.read_text() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_alias_swaps_leave_a_valid_file(kb, tmp_path):
    indexes = [f"kb-v{i}" for i in range(4)]
    for name in indexes:
        kb.create_index(name, 2)
    aliases = [f"alias-{i}" for i in range(4)]
    path = tmp_path / "db" / ALIAS_FILE
    stop = threading.Event()
    errors: list[BaseException] = []
    previous: dict[str, list[str | None]] = {alias: [] for alias in aliases}

    def writer(worker: int) -> None:
        try:
            for step in range(30):
                alias = aliases[(worker + step) % len(aliases)]
                prev = kb.set_alias(alias, indexes[(worker * 7 + step) % len(indexes)])
                previous[alias].append(prev)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                if path.exists():
                    data = json.loads(path.read_text())  # never a half-written file
                    assert set(data) <= set(aliases)
                    assert set(data.values()) <= set(indexes)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()

    assert errors == []
    final = json.loads(path.read_text())
    assert set(final) == set(aliases)
    assert all(kb.resolve_alias(alias) in indexes for alias in aliases)
    # each alias was unset exactly once: the lock serialised read-modify-write
    assert all(prevs.count(None) == 1 for prevs in previous.values())


def test_factory_builds_lancedb_once_per_path(tmp_path):
    from dataclasses import replace

    from chalicelib.config import settings as load_settings
    from chalicelib.kb import get_knowledge_base, reset_knowledge_base_cache

    reset_knowledge_base_cache()
    settings = replace(load_settings(), kb_backend="lancedb", lancedb_path=tmp_path / "f")
    kb = get_knowledge_base(settings)
    assert isinstance(kb, LanceDBKnowledgeBase)
    assert kb.path == tmp_path / "f"
    assert get_knowledge_base(settings) is kb
    other = get_knowledge_base(replace(settings, lancedb_path=tmp_path / "g"))
    assert other is not kb
    reset_knowledge_base_cache()


def test_importing_the_package_does_not_load_backends():
    import subprocess
    import sys

    code = (
        "import sys, chalicelib.kb, chalicelib.kb.fusion\n"
        "loaded = [m for m in ('lancedb', 'pyarrow', 'opensearchpy') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
