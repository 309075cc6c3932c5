"""Refinement: the clean-up every dataset gets before training, and the report the job keeps.

Choices: a document whose id was already kept is skipped (the first one wins, so judgments keep
pointing at it); an exact duplicate (same text after clean-up) is skipped and its id redirected
to the kept copy in eval items; an oversize document is skipped; more documents than the limit
is an error, as is a dataset with nothing left.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field

from chalicelib.datasets.base import Dataset, DatasetError, Document, EvalItem, Limits, Skipped

# C0 controls and DEL except tab and line breaks (the whitespace pass handles those); removed
# before NFKC so that the result is stable when refined again.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[^\S\n]+")  # any whitespace but a newline
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass
class RefinementReport:
    """What refinement did, for the job record: counts and the first skipped records."""

    documents_read: int = 0
    documents_kept: int = 0
    empty: int = 0
    duplicates: int = 0
    duplicate_ids: int = 0
    oversize: int = 0
    eval_read: int = 0
    eval_kept: int = 0
    skipped_total: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def clean_text(text: str) -> str:
    """NFKC, one space for any run of blanks, at most one blank line between paragraphs."""
    text = unicodedata.normalize("NFKC", _CONTROL.sub("", text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def refine(dataset: Dataset, limits: Limits | None = None) -> tuple[Dataset, RefinementReport]:
    """Clean and de-duplicate ``dataset``; what was dropped is in the report and ``skipped``."""
    limits = limits or Limits()
    report = RefinementReport(
        documents_read=len(dataset.documents), eval_read=len(dataset.eval_items)
    )
    skipped = list(dataset.skipped)
    kept: dict[str, Document] = {}
    by_text: dict[str, str] = {}  # cleaned text -> id of the kept document
    aliases: dict[str, str] = {}  # id of a dropped exact duplicate -> id of the kept copy
    for doc in dataset.documents:
        source = f"document {doc.id!r}"
        text = clean_text(doc.text)
        if not doc.id.strip():
            skipped.append(Skipped(source, "empty id"))
        elif not text:
            report.empty += 1
            skipped.append(Skipped(source, "empty text"))
        elif len(text) > limits.max_document_chars:
            report.oversize += 1
            skipped.append(
                Skipped(
                    source,
                    f"{len(text):,} characters is over the limit of {limits.max_document_chars:,}",
                )
            )
        elif text in by_text:
            report.duplicates += 1
            aliases.setdefault(doc.id, by_text[text])
            skipped.append(Skipped(source, f"same text as document {by_text[text]!r}"))
        elif doc.id in kept:
            report.duplicate_ids += 1
            skipped.append(Skipped(source, "id already used by an earlier document, which is kept"))
        else:
            title = " ".join(clean_text(doc.title).split())
            kept[doc.id] = Document(doc.id, text, title, dict(doc.metadata))
            by_text[text] = doc.id
            if len(kept) > limits.max_documents:
                raise DatasetError(
                    f"more than {limits.max_documents:,} documents; split the dataset"
                    " or raise the document limit"
                )
    if not kept:
        raise DatasetError(
            f"no documents left after refinement: {report.documents_read} read,"
            f" {report.empty} empty, {report.oversize} oversize"
        )
    eval_items = _refine_eval(dataset.eval_items, kept, aliases, skipped)
    report.documents_kept = len(kept)
    report.eval_kept = len(eval_items)
    report.skipped_total = len(skipped)
    report.skipped = [asdict(item) for item in skipped[: limits.max_reported_skips]]
    return Dataset(list(kept.values()), eval_items, skipped), report


def _refine_eval(
    items: list[EvalItem],
    kept: dict[str, Document],
    aliases: dict[str, str],
    skipped: list[Skipped],
) -> list[EvalItem]:
    """Clean questions and point judgments at kept documents; drop items left with nothing."""
    refined = []
    for number, item in enumerate(items, 1):
        source = f"eval item {number}"
        question = clean_text(item.question)
        answer = clean_text(item.answer)
        ids = (doc_id if doc_id in kept else aliases.get(doc_id) for doc_id in item.relevant_ids)
        relevant = tuple(dict.fromkeys(doc_id for doc_id in ids if doc_id is not None))
        if not question:
            skipped.append(Skipped(source, "empty question"))
        elif not relevant and not answer:
            skipped.append(Skipped(source, "none of its relevant documents is left, no answer"))
        else:
            refined.append(EvalItem(question, relevant, answer))
    return refined
