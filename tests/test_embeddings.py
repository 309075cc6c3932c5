"""The embedder: shape, normalisation, progress, one model per process, light import."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chalicelib import embeddings
from chalicelib.embeddings import DIMENSION, Embedder, get_embedder

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "The Dewey Decimal Classification has had eighteen editions.",
    "Use made of technical libraries.",
    "Abstracting is a key segment of the information industry, and many librarians enjoy it.",
    "Cats.",
    "Citation indexing links papers to the papers that cite them.",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


def test_import_is_light():
    code = (
        "import sys\n"
        "import chalicelib.embeddings, chalicelib.chunking, chalicelib.metrics\n"
        "import chalicelib.retrieval\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'numpy')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_shape_dtype_and_normalised(embedder):
    np = pytest.importorskip("numpy")
    vectors = embedder.embed(TEXTS, batch_size=2)
    assert vectors.shape == (len(TEXTS), DIMENSION)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dimension == DIMENSION == 384


def test_same_vectors_as_encode_in_input_order(embedder):
    np = pytest.importorskip("numpy")
    ours = embedder.embed(TEXTS, batch_size=2)
    direct = embedder.model.encode(TEXTS, batch_size=2, normalize_embeddings=True)
    assert np.allclose(ours, direct, atol=1e-5)
    # Similar texts are closer than unrelated ones (the model really is loaded).
    dewey = embedder.embed_query("history of the Dewey classification")
    assert int(np.argmax(ours @ dewey)) == 0


def test_progress_fractions_monotone_ending_at_one(embedder):
    seen: list[float] = []
    embedder.embed(TEXTS, batch_size=2, on_progress=seen.append)
    assert seen == sorted(seen)
    assert len(seen) == 3  # ceil(5 / 2) batches
    assert seen[-1] == 1.0
    assert all(0.0 < fraction <= 1.0 for fraction in seen)
    assert seen == pytest.approx([2 / 5, 4 / 5, 1.0])


def test_empty_input(embedder):
    seen: list[float] = []
    vectors = embedder.embed([], on_progress=seen.append)
    assert vectors.shape == (0, DIMENSION)
    assert seen == [1.0]


def test_bad_batch_size(embedder):
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed(TEXTS, batch_size=0)


def test_embed_query(embedder):
    np = pytest.importorskip("numpy")
    vector = embedder.embed_query(TEXTS[0])
    assert vector.shape == (DIMENSION,)
    assert np.allclose(vector, embedder.embed(TEXTS)[0], atol=1e-5)


def test_embed_chunks_embeds_title_and_text(embedder):
    np = pytest.importorskip("numpy")
    from chalicelib.kb.base import Chunk

    chunks = [Chunk("1", 0, "Eighteen editions.", "Dewey"), Chunk("2", 0, "No title here.")]
    vectors = embedder.embed_chunks(chunks)
    assert np.allclose(vectors, embedder.embed(["Dewey\nEighteen editions.", "No title here."]))


def test_tokenizer_and_counts(embedder):
    assert embedder.count_tokens(["hello world"]) == [4]  # [CLS] hello world [SEP]
    assert embedder.count_tokens(["hello world"], special_tokens=False) == [2]
    assert embedder.max_seq_length == embeddings.MAX_SEQ_LENGTH
    assert embedder.tokenizer.is_fast


def test_model_is_loaded_once_per_process(embedder):
    assert embeddings.load_model() is embeddings.load_model() is embedder.model
    assert Embedder().model is embedder.model
    assert get_embedder() is embedder
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_concurrent_first_loads_build_one_model(monkeypatch):
    import sentence_transformers

    built: list[str] = []
    gate = threading.Barrier(4)

    class FakeModel:
        def __init__(self, path: str, device: str) -> None:
            built.append(device)

    monkeypatch.setattr(embeddings, "_model", None)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeModel)
    results: list[object] = []

    def load() -> None:
        gate.wait()
        results.append(embeddings.load_model())

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == ["cpu"]
    assert len({id(model) for model in results}) == 1
