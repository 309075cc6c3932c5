"""Split documents into chunks that fit the embedding model's window.

Choices:

* The embedded text of a chunk is its document's title, a newline, then the chunk text
  (:func:`embedding_text`); the reference figures embedded "title plus abstract", and the title
  gives every chunk of a long document its topic. ``max_tokens`` therefore bounds the whole
  embedded input in model tokens, *including* the title and the tokenizer's special tokens
  ([CLS] and [SEP]); the default, 256, is the model's window, so nothing is ever truncated.
* Text is split on paragraphs (blank lines), then sentences (a light regex; no nltk data).
  Sentences are packed greedily. A paragraph that does not fit in what is left of the current
  chunk but fits in a chunk of its own starts a new chunk instead of being cut; only paragraphs
  bigger than a chunk are cut between sentences, and a sentence bigger than a chunk is cut
  between tokens (between words where possible).
* Consecutive chunks of a document overlap by whole trailing sentences of at most ``overlap``
  tokens (none when the last sentence alone is longer; fewer when the next part would not fit).
* Token counts come from the model's own (fast, Rust) tokenizer in one batched call over all
  sentences of all documents; WordPiece counts add up over whitespace-joined sentences, and the
  total of every chunk is checked again before it is returned.
* A title longer than half the window is cut (at a word) to half the window in the chunks, so
  every chunk keeps at least half the window for its text; the Document keeps the full title.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.datasets.base import Document
from chalicelib.kb.base import Chunk

DEFAULT_MAX_TOKENS = 256
"""Model tokens per embedded chunk (title + text + [CLS]/[SEP]): the all-MiniLM-L6-v2 window."""
DEFAULT_OVERLAP = 32
"""Tokens of whole trailing sentences repeated at the start of the next chunk."""

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_WHITESPACE = re.compile(r"\s+")
# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets), then whitespace,
# then something that can start a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'’”)\]]*\s+(?=[\"'‘“(\[]?[A-Z0-9])")
_ABBREVIATION_WORDS = """e.g i.e etc al vs cf fig figs eq eqs no nos vol vols pp ed eds dr mr mrs ms
prof st jr sr inc ltd co corp dept univ approx ca resp"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)\.$")


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: title, newline, text (or whichever of the two is not empty)."""
    if chunk.title and chunk.text:
        return f"{chunk.title}\n{chunk.text}"
    return chunk.title or chunk.text


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines, with inner whitespace (line wraps) collapsed."""
    paragraphs = (_WHITESPACE.sub(" ", part).strip() for part in _PARAGRAPH_BREAK.split(text))
    return [paragraph for paragraph in paragraphs if paragraph]


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph; does not split after initials or common abbreviations."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        candidate = paragraph[start : match.start()]
        word = _WORD_BEFORE.search(candidate)
        if word and (len(word.group(1)) == 1 or word.group(1).lower() in _ABBREVIATIONS):
            continue  # "J. Smith", "e.g. This", "et al. Then"
        candidate = paragraph[start : match.end()].strip()
        if candidate:
            sentences.append(candidate)
        start = match.end()
    rest = paragraph[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


@dataclass
class _Piece:
    """A sentence (or part of an over-long one) with its token count and paragraph."""

    text: str
    tokens: int
    paragraph: int


def _validate(max_tokens: int, overlap: int, specials: int) -> None:
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative integer, got {overlap!r}")
    if overlap >= max_tokens:
        raise ValueError(f"overlap ({overlap}) must be smaller than max_tokens ({max_tokens})")
    if max_tokens - specials < 2:
        raise ValueError(
            f"max_tokens ({max_tokens}) leaves no room for text after the tokenizer's "
            f"{specials} special tokens"
        )


def _encode(tokenizer: Any, texts: list[str], offsets: bool = False) -> Any:
    return tokenizer(
        texts,
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        return_offsets_mapping=offsets,
    )


def _count(tokenizer: Any, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in _encode(tokenizer, texts)["input_ids"]]


def _cut(text: str, offsets: Sequence[tuple[int, int]], limit: int) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` tokens, between words where possible."""
    parts: list[str] = []
    first = 0
    total = len(offsets)
    while first < total:
        last = min(first + limit, total)  # exclusive
        if last < total:
            # Prefer to end where the next token starts a new word (whitespace before it).
            for boundary in range(last, first, -1):
                if offsets[boundary][0] > offsets[boundary - 1][1]:
                    last = boundary
                    break
        part = text[offsets[first][0] : offsets[last - 1][1]].strip()
        if part:
            parts.append(part)
        first = last
    return parts


def _split_long(tokenizer: Any, texts: list[str], limit: int) -> list[list[str]]:
    """Parts of at most ``limit`` tokens for each text (re-checked, cut finer if needed)."""
    encoded = _encode(tokenizer, texts, offsets=True)
    result: list[list[str]] = []
    for text, offsets in zip(texts, encoded["offset_mapping"], strict=True):
        parts = _cut(text, offsets, limit)
        counts = _count(tokenizer, parts)
        fixed: list[str] = []
        for part, count in zip(parts, counts, strict=True):
            # A cut inside a word can re-tokenize to more tokens; cut such a part again.
            if count > limit and limit > 1:
                fixed.extend(_split_long(tokenizer, [part], max(1, limit - (count - limit)))[0])
            else:
                fixed.append(part)
        result.append(fixed)
    return result


def _truncate_title(tokenizer: Any, title: str, limit: int) -> str:
    offsets = _encode(tokenizer, [title], offsets=True)["offset_mapping"][0]
    return _cut(title, offsets, limit)[0] if offsets else title


def _pack(pieces: list[_Piece], budget: int, overlap: int) -> list[list[_Piece]]:
    """Pack pieces (each at most ``budget`` tokens) greedily into chunks, with overlap."""
    chunks: list[list[_Piece]] = []
    current: list[_Piece] = []
    used = 0
    fresh = 0  # pieces in ``current`` not carried over from the previous chunk

    def close() -> None:
        nonlocal current, used, fresh
        chunks.append(current)
        carry: list[_Piece] = []
        carried = 0
        for piece in reversed(current[1:]):  # never carry a whole chunk
            if carried + piece.tokens > overlap:
                break
            carry.insert(0, piece)
            carried += piece.tokens
        current, used, fresh = carry, carried, 0

    def make_room(needed: int) -> None:
        nonlocal used
        while current and used + needed > budget:
            used -= current.pop(0).tokens  # give up overlap rather than overflow

    paragraphs: dict[int, list[_Piece]] = {}
    for piece in pieces:
        paragraphs.setdefault(piece.paragraph, []).append(piece)
    for paragraph in paragraphs.values():
        size = sum(piece.tokens for piece in paragraph)
        if used + size > budget and size <= budget:
            # The paragraph fits in a chunk of its own: start one rather than cut it.
            if fresh:
                close()
            make_room(size)
        for piece in paragraph:
            if used + piece.tokens > budget:
                if fresh:
                    close()
                make_room(piece.tokens)
            current.append(piece)
            used += piece.tokens
            fresh += 1
    if fresh:
        chunks.append(current)
    return chunks


def _join(pieces: list[_Piece]) -> str:
    text = pieces[0].text
    for previous, piece in itertools.pairwise(pieces):
        text += ("\n\n" if piece.paragraph != previous.paragraph else " ") + piece.text
    return text


def chunk_documents(
    docs: Iterable[Document],
    tokenizer: Any = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    """Chunks of every document, in document order then position order.

    ``tokenizer`` is a Hugging Face fast tokenizer (the model's, by default, loaded without the
    weights). Every chunk satisfies
    ``len(tokenizer(embedding_text(chunk))["input_ids"]) <= max_tokens``, special tokens included.
    A document without text gets one chunk holding just its title; one with neither gets none.
    """
    if tokenizer is None:
        from chalicelib.embeddings import get_tokenizer

        tokenizer = get_tokenizer()
    specials = int(tokenizer.num_special_tokens_to_add(pair=False))
    _validate(max_tokens, overlap, specials)
    window = max_tokens - specials
    title_limit = window // 2

    docs = list(docs)
    titles = [_WHITESPACE.sub(" ", doc.title).strip() for doc in docs]
    title_tokens = _count(tokenizer, titles)
    for i, (title, count) in enumerate(zip(titles, title_tokens, strict=True)):
        if count > title_limit:
            titles[i] = _truncate_title(tokenizer, title, title_limit)
            title_tokens[i] = _count(tokenizer, [titles[i]])[0]
    budgets = [window - count for count in title_tokens]

    # Every sentence of every document, tokenized in one batch.
    sentences: list[tuple[int, int, str]] = []  # (document, paragraph, sentence)
    for d, doc in enumerate(docs):
        for p, paragraph in enumerate(split_paragraphs(doc.text)):
            sentences.extend((d, p, sentence) for sentence in split_sentences(paragraph))
    counts = _count(tokenizer, [sentence for _, _, sentence in sentences])

    long = [i for i, count in enumerate(counts) if count > budgets[sentences[i][0]]]
    parts: dict[int, list[str]] = {}
    for budget in sorted({budgets[sentences[i][0]] for i in long}):
        group = [i for i in long if budgets[sentences[i][0]] == budget]
        split = _split_long(tokenizer, [sentences[i][2] for i in group], budget)
        parts.update(zip(group, split, strict=True))
    part_counts = iter(_count(tokenizer, [part for i in long for part in parts[i]]))

    pieces: list[list[_Piece]] = [[] for _ in docs]
    for i, ((d, p, sentence), count) in enumerate(zip(sentences, counts, strict=True)):
        if i in parts:
            pieces[d].extend(_Piece(part, next(part_counts), p) for part in parts[i])
        else:
            pieces[d].append(_Piece(sentence, count, p))

    chunks: list[Chunk] = []
    for d, doc in enumerate(docs):
        packed = _pack(pieces[d], budgets[d], overlap)
        if not packed and titles[d]:
            chunks.append(Chunk(doc.id, 0, "", titles[d]))
        for position, group in enumerate(packed):
            chunks.append(Chunk(doc.id, position, _join(group), titles[d]))

    # WordPiece counts add up over whitespace joins; check the promise anyway.
    totals = _count_with_specials(tokenizer, [embedding_text(chunk) for chunk in chunks])
    over = [chunk.chunk_id for chunk, n in zip(chunks, totals, strict=True) if n > max_tokens]
    if over:
        raise RuntimeError(
            f"chunks over {max_tokens} tokens with this tokenizer: {', '.join(over[:5])}"
        )
    return chunks


def chunk_document(
    doc: Document,
    tokenizer: Any = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    """Chunks of one document (see :func:`chunk_documents`); positions count from 0."""
    return chunk_documents([doc], tokenizer, max_tokens, overlap)


def _count_with_specials(tokenizer: Any, texts: list[str]) -> list[int]:
    if not texts:
        return []
    encoded = tokenizer(texts, return_attention_mask=False, return_token_type_ids=False)
    return [len(ids) for ids in encoded["input_ids"]]
