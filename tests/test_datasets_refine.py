"""Refinement: text clean-up, dropped documents and judgments, limits, and the report."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.datasets import Dataset, DatasetError, Document, EvalItem, Limits, refine
from chalicelib.datasets.base import Skipped
from chalicelib.datasets.refine import clean_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a \t\t b  ", "a b"),
        ("ﬁne Ｆｕｌｌ\u00a0width ①", "fine Full width 1"),
        ("cafe\u0301", "café"),
        ("one\r\ntwo\rthree", "one\ntwo\nthree"),
        ("para one\n \t \n\n\n  para two\n", "para one\n\npara two"),
        ("bell\x07 and nul\x00 gone\x7f", "bell and nul gone"),
        ("line \u2028sep", "line sep"),
        (" \n\t\n ", ""),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_refine_cleans_documents_titles_and_questions():
    dataset = Dataset(
        [Document("1", "  Ｈello\t\tworld \n\n\n\nbye ", " A\n  title ", {"k": "v"})],
        [EvalItem("  what\u00a0is  it? ", ("1",), " an  answer ")],
    )
    refined, report = refine(dataset)
    assert refined.documents == [Document("1", "Hello world\n\nbye", "A title", {"k": "v"})]
    assert refined.eval_items == [EvalItem("what is it?", ("1",), "an answer")]
    assert (report.documents_read, report.documents_kept, report.skipped_total) == (1, 1, 0)


def test_refine_drops_and_counts_empty_duplicate_and_oversize_documents():
    reader_skip = Skipped("docs.jsonl:9", "invalid JSON (Expecting value at column 1)")
    dataset = Dataset(
        [
            Document("a", "Alpha text"),
            Document("empty", " \n\t "),
            Document("a-copy", "Alpha   text"),
            Document("a", "A different text under a used id"),
            Document("big", "x" * 101),
            Document("b", "Beta"),
            Document(" ", "no id"),
        ],
        [],
        [reader_skip],
    )
    refined, report = refine(dataset, Limits(max_document_chars=100))
    assert [doc.id for doc in refined.documents] == ["a", "b"]
    assert report.to_dict() == {
        "documents_read": 7,
        "documents_kept": 2,
        "empty": 1,
        "duplicates": 1,
        "duplicate_ids": 1,
        "oversize": 1,
        "eval_read": 0,
        "eval_kept": 0,
        "skipped_total": 6,
        "skipped": [
            {"source": "docs.jsonl:9", "reason": "invalid JSON (Expecting value at column 1)"},
            {"source": "document 'empty'", "reason": "empty text"},
            {"source": "document 'a-copy'", "reason": "same text as document 'a'"},
            {
                "source": "document 'a'",
                "reason": "id already used by an earlier document, which is kept",
            },
            {"source": "document 'big'", "reason": "101 characters is over the limit of 100"},
            {"source": "document ' '", "reason": "empty id"},
        ],
    }
    assert refined.skipped[0] == reader_skip
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()


def test_same_id_and_same_text_counts_as_an_exact_duplicate():
    _, report = refine(Dataset([Document("1", "same"), Document("1", "same")]))
    assert (report.duplicates, report.duplicate_ids, report.documents_kept) == (1, 0, 1)


def test_eval_judgments_follow_kept_documents():
    dataset = Dataset(
        [Document("a", "alpha"), Document("a2", "alpha"), Document("e", ""), Document("b", "b")],
        [
            EvalItem("points at the duplicate", ("a2", "b", "a")),
            EvalItem("points at unknown and empty docs", ("zzz", "e")),
            EvalItem("unknown ids but an answer", ("zzz",), "alpha"),
            EvalItem(" \t ", ("a",)),
        ],
    )
    refined, report = refine(dataset)
    assert refined.eval_items == [
        EvalItem("points at the duplicate", ("a", "b")),
        EvalItem("unknown ids but an answer", (), "alpha"),
    ]
    assert (report.eval_read, report.eval_kept) == (4, 2)
    assert refined.skipped[-2:] == [
        Skipped("eval item 2", "none of its relevant documents is left, no answer"),
        Skipped("eval item 4", "empty question"),
    ]


def test_a_duplicate_whose_id_is_reused_is_not_redirected():
    dataset = Dataset(
        [Document("a", "same"), Document("b", "same"), Document("b", "other")],
        [EvalItem("q", ("b",))],
    )
    refined, _ = refine(dataset)
    assert [doc.id for doc in refined.documents] == ["a", "b"]
    assert refined.eval_items == [EvalItem("q", ("b",))]


def test_too_many_documents_is_an_error():
    dataset = Dataset([Document(str(n), f"text {n}") for n in range(4)])
    with pytest.raises(DatasetError) as error:
        refine(dataset, Limits(max_documents=3))
    assert str(error.value) == (
        "more than 3 documents; split the dataset or raise the document limit"
    )


def test_nothing_left_is_an_error():
    with pytest.raises(DatasetError) as error:
        refine(
            Dataset([Document("1", " "), Document("2", "x" * 11)]), Limits(max_document_chars=10)
        )
    assert str(error.value) == ("no documents left after refinement: 2 read, 1 empty, 1 oversize")


def test_report_lists_only_the_first_skipped_records():
    dataset = Dataset([Document("keep", "text")] + [Document(f"e{n}", "") for n in range(250)])
    refined, report = refine(dataset, Limits(max_reported_skips=100))
    assert report.skipped_total == 250 == len(refined.skipped)
    assert len(report.skipped) == 100
    assert report.skipped[0] == {"source": "document 'e0'", "reason": "empty text"}


def test_refine_does_not_change_its_input():
    dataset = Dataset([Document("1", " a  b ")], [EvalItem(" q ", ("1",))])
    refine(dataset)
    assert dataset == Dataset([Document("1", " a  b ")], [EvalItem(" q ", ("1",))])


documents = st.lists(
    st.builds(
        Document,
        id=st.text(min_size=1, max_size=3),
        text=st.text(max_size=40),
        title=st.text(max_size=10),
        metadata=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    ),
    min_size=1,
    max_size=8,
)


@given(documents, st.data())
def test_refining_twice_changes_nothing(docs, data):
    ids = [doc.id for doc in docs]
    items = data.draw(
        st.lists(
            st.builds(EvalItem, st.text(max_size=20), st.lists(st.sampled_from(ids)).map(tuple)),
            max_size=3,
        )
    )
    try:
        once, _ = refine(Dataset(docs, items))
    except DatasetError:
        return  # nothing left to keep: covered above
    twice, report = refine(once)
    assert (twice.documents, twice.eval_items) == (once.documents, once.eval_items)
    assert report.skipped_total == len(once.skipped)  # only the earlier skips are carried
