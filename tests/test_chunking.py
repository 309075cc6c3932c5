"""Chunking with the model's real tokenizer (loaded without the weights)."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from chalicelib.chunking import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_OVERLAP,
    chunk_document,
    chunk_documents,
    embedding_text,
    split_paragraphs,
    split_sentences,
)
from chalicelib.datasets.base import Document

REPO = Path(__file__).resolve().parents[1]
CISI = Path(os.environ.get("CISI_PATH", REPO.parent / "shared" / "datasets" / "cisi"))


@pytest.fixture(scope="module")
def tokenizer():
    from chalicelib.embeddings import get_tokenizer

    return get_tokenizer()


def n_tokens(tokenizer, text: str, special: bool = False) -> int:
    return len(tokenizer(text, add_special_tokens=special)["input_ids"])


def numbered(count: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {i} talks about topic {i}." for i in range(start, count))


def test_defaults_fit_the_model_window():
    from chalicelib.embeddings import MAX_SEQ_LENGTH

    assert DEFAULT_MAX_TOKENS == MAX_SEQ_LENGTH == 256
    assert 0 < DEFAULT_OVERLAP < DEFAULT_MAX_TOKENS


def test_split_paragraphs_on_blank_lines_and_unwraps_lines():
    text = "First line\nwrapped here.\n\n \nSecond  paragraph.\n\t\nThird."
    assert split_paragraphs(text) == ["First line wrapped here.", "Second paragraph.", "Third."]
    assert split_paragraphs("  \n\n ") == []


def test_split_sentences_keeps_initials_and_abbreviations():
    paragraph = (
        'Comaromi, J. P. studied the DDC, e.g. its 18 editions. It grew! Did it? "Yes." '
        "(Surely.) Smith et al. Disagree. 1971 saw the last one."
    )
    assert split_sentences(paragraph) == [
        "Comaromi, J. P. studied the DDC, e.g. its 18 editions.",
        "It grew!",
        "Did it?",
        '"Yes."',
        "(Surely.)",
        "Smith et al. Disagree.",
        "1971 saw the last one.",
    ]
    assert split_sentences("no end mark") == ["no end mark"]


def test_short_document_is_one_chunk_with_title(tokenizer):
    doc = Document("7", "Libraries lend books.\nThey also lend\nrecords.", "On Libraries")
    [chunk] = chunk_document(doc, tokenizer)
    assert chunk.doc_id == "7"
    assert chunk.position == 0
    assert chunk.title == "On Libraries"
    assert chunk.text == "Libraries lend books. They also lend records."
    assert embedding_text(chunk) == "On Libraries\nLibraries lend books. They also lend records."


def test_embedding_text_without_title_or_text():
    from chalicelib.kb.base import Chunk

    assert embedding_text(Chunk("d", 0, "text only")) == "text only"
    assert embedding_text(Chunk("d", 0, "", "title only")) == "title only"


def test_empty_documents(tokenizer):
    assert chunk_document(Document("e", "  \n\n "), tokenizer) == []
    [chunk] = chunk_document(Document("t", "", "Just a title"), tokenizer)
    assert (chunk.text, chunk.title, chunk.position) == ("", "Just a title", 0)


def test_chunks_break_on_sentences_with_token_limit_and_positions(tokenizer):
    doc = Document("d", numbered(80), "A Title")
    chunks = chunk_document(doc, tokenizer, max_tokens=64, overlap=0)
    assert len(chunks) > 3
    assert [c.position for c in chunks] == list(range(len(chunks)))
    sentences = split_sentences(numbered(80))
    rebuilt: list[str] = []
    for chunk in chunks:
        assert n_tokens(tokenizer, embedding_text(chunk), special=True) <= 64
        parts = split_sentences(chunk.text)
        assert all(part in sentences for part in parts)  # never cut inside a sentence
        rebuilt.extend(parts)
    assert rebuilt == sentences  # no overlap: every sentence exactly once, in order


def test_chunks_are_packed_full(tokenizer):
    chunks = chunk_document(Document("d", numbered(80)), tokenizer, max_tokens=64, overlap=0)
    one_sentence = n_tokens(tokenizer, "Sentence number 10 talks about topic 10.")
    for chunk in chunks[:-1]:
        # The next sentence would not have fit.
        assert n_tokens(tokenizer, chunk.text, special=True) + one_sentence > 64


def test_overlap_repeats_whole_trailing_sentences(tokenizer):
    chunks = chunk_document(Document("d", numbered(60), "T"), tokenizer, max_tokens=80, overlap=24)
    assert len(chunks) > 2
    for previous, current in itertools.pairwise(chunks):
        before = split_sentences(previous.text)
        after = split_sentences(current.text)
        shared = [s for s in after if s in before]
        assert shared, "consecutive chunks should overlap"
        assert before[-len(shared) :] == shared == after[: len(shared)]
        assert sum(n_tokens(tokenizer, s) for s in shared) <= 24
        assert len(after) > len(shared)  # every chunk brings something new
    for chunk in chunks:
        assert n_tokens(tokenizer, embedding_text(chunk), special=True) <= 80


def test_no_overlap_when_last_sentence_is_longer_than_overlap(tokenizer):
    text = numbered(40)
    chunks = chunk_document(Document("d", text), tokenizer, max_tokens=60, overlap=5)
    sentences = [s for c in chunks for s in split_sentences(c.text)]
    assert sentences == split_sentences(text)


def test_paragraph_kept_whole_when_it_fits_a_chunk(tokenizer):
    first = numbered(5)
    second = numbered(15, start=5)
    # Room for the second paragraph on its own, not for both.
    window = n_tokens(tokenizer, second) + 2 + 5
    assert n_tokens(tokenizer, first) > 5
    chunks = chunk_document(
        Document("d", f"{first}\n\n{second}"), tokenizer, max_tokens=window, overlap=0
    )
    assert [c.text for c in chunks] == [first, second]
    # With overlap, the overlap gives way to keeping the paragraph whole.
    chunks = chunk_document(
        Document("d", f"{first}\n\n{second}"), tokenizer, max_tokens=window, overlap=16
    )
    assert [c.text for c in chunks] == [first, second]


def test_small_paragraphs_are_packed_together(tokenizer):
    text = "One short paragraph.\n\nAnother short one.\n\nA third."
    [chunk] = chunk_document(Document("d", text), tokenizer)
    assert chunk.text == "One short paragraph.\n\nAnother short one.\n\nA third."


def test_long_sentence_is_split_on_token_boundaries(tokenizer):
    words = " ".join(f"word{i}" for i in range(300))  # one sentence, ~900 tokens
    chunks = chunk_document(Document("d", words, "Title"), tokenizer, max_tokens=100, overlap=10)
    assert len(chunks) > 5
    for chunk in chunks:
        assert n_tokens(tokenizer, embedding_text(chunk), special=True) <= 100
    # Cut between words: every word survives whole, in order, once.
    assert " ".join(c.text for c in chunks).split() == words.split()


def test_unbroken_token_run_is_still_cut(tokenizer):
    blob = "xq" * 45  # one 90-piece word (longer words become a single [UNK])
    assert n_tokens(tokenizer, blob) == 90
    chunks = chunk_document(Document("d", blob), tokenizer, max_tokens=20, overlap=0)
    assert len(chunks) > 4
    assert all(n_tokens(tokenizer, c.text, special=True) <= 20 for c in chunks)
    assert "".join(c.text for c in chunks) == blob


def test_long_title_is_cut_to_half_the_window(tokenizer):
    title = " ".join(f"title{i}" for i in range(100))
    chunks = chunk_document(Document("d", numbered(30), title), tokenizer, max_tokens=64)
    assert chunks
    for chunk in chunks:
        assert title.startswith(chunk.title)
        assert n_tokens(tokenizer, chunk.title) <= (64 - 2) // 2
        assert n_tokens(tokenizer, embedding_text(chunk), special=True) <= 64


def test_chunk_documents_keeps_document_order(tokenizer):
    docs = [Document(str(i), numbered(i * 15 + 1), f"Doc {i}") for i in range(5)]
    chunks = chunk_documents(docs, tokenizer, max_tokens=100, overlap=16)
    assert [c.doc_id for c in chunks] == sorted((c.doc_id for c in chunks), key=int)
    for doc in docs:
        mine = [c for c in chunks if c.doc_id == doc.id]
        assert [c.position for c in mine] == list(range(len(mine)))
        assert {c.title for c in mine} == {doc.title}
    assert chunks == [c for doc in docs for c in chunk_document(doc, tokenizer, 100, 16)]


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "message"),
    [
        (0, 0, "max_tokens must be a positive integer"),
        (-5, 0, "max_tokens must be a positive integer"),
        (100, -1, "overlap must be a non-negative integer"),
        (100, 100, r"overlap \(100\) must be smaller than max_tokens \(100\)"),
        (100, 150, "must be smaller than max_tokens"),
        (3, 0, "leaves no room for text"),
        (1.5, 0, "max_tokens must be a positive integer"),
    ],
)
def test_invalid_arguments(tokenizer, max_tokens, overlap, message):
    with pytest.raises(ValueError, match=message):
        chunk_document(Document("d", "Some text."), tokenizer, max_tokens, overlap)


@pytest.mark.skipif(not (CISI / "CISI.ALL").exists(), reason="CISI collection not available")
def test_cisi_chunks_fast_and_within_the_window(tokenizer):
    from chalicelib.datasets.smart import SmartReader

    docs = SmartReader().read(CISI).documents
    assert len(docs) == 1460
    start = time.perf_counter()
    chunks = chunk_documents(docs, tokenizer)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"chunking CISI took {elapsed:.1f}s"
    assert {c.doc_id for c in chunks} == {d.id for d in docs if d.text.strip() or d.title}
    lengths = tokenizer([embedding_text(c) for c in chunks])["input_ids"]
    assert max(len(ids) for ids in lengths) <= DEFAULT_MAX_TOKENS
