"""Every dataset reader on small files the tests write, the real CISI collection, and bad input."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.datasets import Dataset, DatasetError, Document, EvalItem, Limits
from chalicelib.datasets.base import DatasetReader, Skipped
from chalicelib.datasets.csv_reader import CsvReader
from chalicelib.datasets.jsonl import JsonlReader
from chalicelib.datasets.smart import SmartReader
from chalicelib.datasets.text import TextReader

CISI = Path(
    os.environ.get("CISI_PATH")
    or Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cisi"
)


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# --- JSONL -------------------------------------------------------------------------------------


def test_jsonl_file_reads_documents_with_metadata_as_strings(tmp_path):
    path = write_lines(
        tmp_path / "docs.jsonl",
        json.dumps({"id": 7, "title": "Seven", "text": "seven", "lang": "en", "year": 1999}),
        "",
        json.dumps({"id": "b", "text": "bee", "tags": ["x", "y"], "score": 0.5, "note": None}),
        json.dumps({"id": "c", "text": "sea", "metadata": {"id": "orig", "n": 3}}),
    )
    dataset = JsonlReader().read(path)
    assert dataset.documents == [
        Document("7", "seven", "Seven", {"lang": "en", "year": "1999"}),
        Document("b", "bee", "", {"tags": '["x", "y"]', "score": "0.5"}),
        Document("c", "sea", "", {"id": "orig", "n": "3"}),
    ]
    assert dataset.eval_items == []
    assert dataset.skipped == []


@pytest.mark.parametrize("eval_name", ["eval.jsonl", "questions.jsonl"])
def test_jsonl_folder_reads_documents_and_eval_items(tmp_path, eval_name):
    write_lines(
        tmp_path / "documents.jsonl",
        json.dumps({"id": 1, "text": "one"}),
        json.dumps({"id": 2, "text": "two"}),
    )
    write_lines(
        tmp_path / eval_name,
        json.dumps({"question": "Which is one?", "relevant_ids": [1]}),
        json.dumps({"question": "Say two", "answer": "two"}),
        json.dumps({"question": "Both?", "relevant_ids": ["1", 2], "answer": "yes"}),
    )
    assert JsonlReader.accepts(tmp_path)
    dataset = JsonlReader().read(tmp_path)
    assert [doc.id for doc in dataset.documents] == ["1", "2"]
    assert dataset.eval_items == [
        EvalItem("Which is one?", ("1",)),
        EvalItem("Say two", (), "two"),
        EvalItem("Both?", ("1", "2"), "yes"),
    ]


def test_jsonl_folder_with_two_eval_files_is_ambiguous(tmp_path):
    write_lines(tmp_path / "documents.jsonl", json.dumps({"id": 1, "text": "one"}))
    for name in ("eval.jsonl", "questions.jsonl"):
        write_lines(tmp_path / name, json.dumps({"question": "q", "answer": "a"}))
    with pytest.raises(DatasetError, match=r"eval\.jsonl and questions\.jsonl"):
        JsonlReader().read(tmp_path)


def test_jsonl_bad_lines_are_skipped_with_file_line_and_reason(tmp_path):
    path = write_lines(
        tmp_path / "docs.jsonl",
        json.dumps({"id": "ok", "text": "fine"}),
        '{"id": "x", "text": "unterminated',
        json.dumps({"id": "no-text"}),
        json.dumps(["a", "list"]),
        json.dumps({"text": "no id"}),
        json.dumps({"id": 1.5, "text": "float id"}),
        json.dumps({"id": True, "text": "bool id"}),
        json.dumps({"id": "n", "text": 42}),
        '{"id": "s", "text": "lone \\ud800 surrogate"}',
        "1" * 5000,
        "[" * 100_000,
    )
    dataset = JsonlReader().read(path)
    assert [doc.id for doc in dataset.documents] == ["ok"]
    reasons = {item.source: item.reason for item in dataset.skipped}
    assert reasons["docs.jsonl:2"].startswith("invalid JSON (Unterminated string")
    assert reasons["docs.jsonl:3"] == "missing field 'text'"
    assert reasons["docs.jsonl:4"] == "expected a JSON object, got list"
    assert reasons["docs.jsonl:5"] == "missing field 'id'"
    assert "'id' must hold strings or integers, got float" in reasons["docs.jsonl:6"]
    assert "got bool" in reasons["docs.jsonl:7"]
    assert reasons["docs.jsonl:8"] == "'text' must be a string, got int"
    assert "unpaired surrogate" in reasons["docs.jsonl:9"]
    assert reasons["docs.jsonl:10"].startswith("invalid JSON (ValueError")
    assert reasons["docs.jsonl:11"].startswith("invalid JSON (RecursionError")
    assert str(dataset.skipped[0]).startswith("docs.jsonl:2: invalid JSON (")


def test_jsonl_where_every_line_is_bad_is_an_error(tmp_path):
    path = write_lines(tmp_path / "docs.jsonl", "not json", "{also not", "")
    with pytest.raises(DatasetError) as error:
        JsonlReader().read(path)
    assert str(error.value).startswith("docs.jsonl: no usable line; the first problem is")
    assert "docs.jsonl:1: invalid JSON" in str(error.value)


def test_jsonl_bad_eval_lines_are_skipped(tmp_path):
    write_lines(tmp_path / "documents.jsonl", json.dumps({"id": 1, "text": "one"}))
    write_lines(
        tmp_path / "eval.jsonl",
        json.dumps({"question": "good", "relevant_ids": [1]}),
        json.dumps({"relevant_ids": [1]}),
        json.dumps({"question": "judged by nothing"}),
        json.dumps({"question": "ids as a string", "relevant_ids": "1"}),
        json.dumps({"question": "empty id", "relevant_ids": [""]}),
    )
    dataset = JsonlReader().read(tmp_path)
    assert dataset.eval_items == [EvalItem("good", ("1",))]
    assert dataset.skipped == [
        Skipped("eval.jsonl:2", "missing field 'question'"),
        Skipped("eval.jsonl:3", "needs 'relevant_ids' or 'answer'"),
        Skipped("eval.jsonl:4", "'relevant_ids' must be a list of document ids"),
        Skipped("eval.jsonl:5", "empty id in 'relevant_ids'"),
    ]


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    text = "one\u2028two\x85three\u2029four"
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "u", "text": text}, ensure_ascii=False), encoding="utf-8")
    assert JsonlReader().read(path).documents == [Document("u", text)]


# --- encodings and sizes (shared by every reader) ---------------------------------------------


def test_utf8_with_bom_is_read(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": 1, "text": "bom"}).encode())
    assert JsonlReader().read(path).documents == [Document("1", "bom")]


def test_latin1_file_is_an_error_naming_file_offset_and_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'{"id": 1, "text": "fine"}\n{"id": 2, "text": "caf\xe9"}\n')
    with pytest.raises(DatasetError) as error:
        JsonlReader().read(path)
    assert str(error.value) == (
        "docs.jsonl: not valid UTF-8 at byte offset 48 (line 2); save the file as UTF-8"
    )


def test_utf16_file_gets_a_hint(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_bytes("id,text\n1,hello\n".encode("utf-16"))
    with pytest.raises(DatasetError, match=r"docs.csv: not valid UTF-8 at byte offset 0 .*UTF-16"):
        CsvReader().read(path)


def test_oversize_file_is_refused_before_reading(tmp_path):
    path = write_lines(tmp_path / "docs.jsonl", json.dumps({"id": 1, "text": "x" * 100}))
    with pytest.raises(DatasetError) as error:
        JsonlReader(Limits(max_file_bytes=50)).read(path)
    assert str(error.value) == "docs.jsonl: 122 bytes is over the limit of 50 bytes"


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_reads_id_title_text_and_metadata(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text(
        '\ufeffID,Title,Text,source\n1,One,"first, with comma",web\n2,,"two\nlines",\n',
        encoding="utf-8",
    )
    assert CsvReader.accepts(path)
    dataset = CsvReader().read(path)
    assert dataset.documents == [
        Document("1", "first, with comma", "One", {"source": "web"}),
        Document("2", "two\nlines", "", {"source": ""}),
    ]


def test_csv_without_id_column_uses_line_numbers(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text('text\n"multi\nline"\n\nthird line\n', encoding="utf-8")
    dataset = CsvReader().read(path)
    assert [(doc.id, doc.text) for doc in dataset.documents] == [
        ("2", "multi\nline"),
        ("5", "third line"),
    ]


def test_csv_without_text_column_names_the_file_and_columns(tmp_path):
    path = write_lines(tmp_path / "docs.csv", "id,body", "1,hello")
    with pytest.raises(DatasetError) as error:
        CsvReader().read(path)
    assert str(error.value) == "docs.csv: the header has no 'text' column (it has: id, body)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "docs.csv: empty file; expected a header row with a 'text' column"),
        ("id,text,Text\n1,a,b\n", "docs.csv: the header repeats the column(s) text"),
        ('id,text\n1,"unterminated\n2,next\n', "docs.csv:3: malformed CSV (unexpected end"),
    ],
)
def test_csv_unusable_files_are_errors(tmp_path, content, message):
    path = tmp_path / "docs.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        CsvReader().read(path)
    assert str(error.value).startswith(message)


def test_csv_bad_rows_are_skipped_with_line_numbers(tmp_path):
    path = write_lines(tmp_path / "docs.csv", "id,text", "1,ok", "2", "3,a,extra", " ,no id")
    dataset = CsvReader().read(path)
    assert [doc.id for doc in dataset.documents] == ["1"]
    assert dataset.skipped == [
        Skipped("docs.csv:3", "expected 2 fields, got 1"),
        Skipped("docs.csv:4", "expected 2 fields, got 3"),
        Skipped("docs.csv:5", "empty 'id'"),
    ]


def test_csv_reads_a_document_longer_than_the_csv_module_default(tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text("id,text\n1," + "x" * 300_000 + "\n", encoding="utf-8")
    assert len(CsvReader().read(path).documents[0].text) == 300_000


# --- plain text, Markdown, zip -------------------------------------------------------------------


def test_text_folder_ids_titles_and_skips(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.md").write_text("intro\n\n## Getting started ##\ntext", encoding="utf-8")
    (tmp_path / "plain.md").write_text("no heading\n#hashtag", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("# not a heading in .txt", encoding="utf-8")
    (tmp_path / ".git" / "c.md").write_text("# hidden", encoding="utf-8")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    assert TextReader.accepts(tmp_path)
    dataset = TextReader().read(tmp_path)
    assert [(doc.id, doc.title) for doc in dataset.documents] == [
        ("a.md", "Getting started"),
        ("plain.md", "plain"),
        ("sub/b.txt", "b"),
    ]
    assert dataset.documents[2].text == "# not a heading in .txt"
    assert dataset.skipped == [Skipped("logo.png", "not a .txt or .md file")]


def test_single_markdown_file(tmp_path):
    path = tmp_path / "Notes.MD"
    path.write_text("# Notes\nbody", encoding="utf-8")
    assert TextReader().read(path).documents == [Document("Notes.MD", "# Notes\nbody", "Notes")]


def test_text_folder_with_bad_encoding_names_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "old.txt").write_bytes(b"na\xefve")
    with pytest.raises(DatasetError, match=r"^sub/old.txt: not valid UTF-8 at byte offset 2 "):
        TextReader().read(tmp_path)


def test_zip_is_read_in_memory(tmp_path):
    path = write_zip(
        tmp_path / "docs.zip",
        {
            "guide/intro.md": "# Intro\nhello",
            "readme.txt": "plain",
            "guide/": "",
            "__MACOSX/guide/._intro.md": b"\x00\x05\x16\x07\xff",
            "image.jpg": b"\xff\xd8",
        },
    )
    before = sorted(tmp_path.iterdir())
    dataset = TextReader().read(path)
    assert dataset.documents == [
        Document("guide/intro.md", "# Intro\nhello", "Intro"),
        Document("readme.txt", "plain", "readme"),
    ]
    assert dataset.skipped == [Skipped("docs.zip/image.jpg", "not a .txt or .md file")]
    assert sorted(tmp_path.iterdir()) == before  # nothing extracted


@pytest.mark.parametrize("entry", ["../evil.md", "a/../../evil.md", "/etc/evil.md", "..\\evil.md"])
def test_zip_with_path_traversal_is_refused(tmp_path, entry):
    path = write_zip(tmp_path / "docs.zip", {"ok.md": "fine", entry: "evil"})
    with pytest.raises(DatasetError) as error:
        TextReader().read(path)
    assert str(error.value).startswith(f"docs.zip: entry {entry!r} points outside the archive")


def test_zip_bomb_is_refused_naming_the_entry(tmp_path):
    path = write_zip(tmp_path / "bomb.zip", {"small.txt": "ok", "big.txt": "0" * 1_000_000})
    assert path.stat().st_size < 5_000
    with pytest.raises(DatasetError) as error:
        TextReader(Limits(max_zip_bytes=100_000)).read(path)
    assert str(error.value).startswith(
        "bomb.zip/big.txt: the archive's text unpacks to more than 100,000 bytes (zip bomb?)"
    )


def test_zip_member_with_bad_encoding_names_the_entry(tmp_path):
    path = write_zip(tmp_path / "docs.zip", {"ok.txt": "fine", "dir/old.txt": b"caf\xe9"})
    with pytest.raises(
        DatasetError, match=r"^docs.zip/dir/old.txt: not valid UTF-8 at byte offset 3"
    ):
        TextReader().read(path)


def test_zip_with_corrupt_member_names_the_entry(tmp_path):
    path = write_zip(tmp_path / "docs.zip", {"a.txt": "A" * 1000})
    data = bytearray(path.read_bytes())
    offset = data.index(b"a.txt") + len("a.txt") + 5  # inside the compressed stream
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"^docs.zip/a.txt: cannot be read from the archive"):
        TextReader().read(path)


def test_not_a_zip_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "docs.zip"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetError, match=r"^docs.zip: not a readable zip archive"):
        TextReader().read(path)


# --- SMART ---------------------------------------------------------------------------------------

SMART_ALL = """\
.I 1
.T
A Title
on Two Lines
.A
Doe, J.
Roe, R.
.W
First abstract
  with an indented line.
.X
1\t5\t1
.I 2
.T Inline title
.W
.NET is not a tag.
.I 3
.T
No abstract here
.I
.W
orphan
"""
SMART_QRY = """\
.I 1
.W
What is first?
.I 2
.T
Titled query
.W
What else?
.I 3
.W
Never judged.
"""
SMART_REL = """\
     1     1\t0\t0.000000
     1     2\t0\t0.000000
     1     2\t0\t0.000000
     2     2\t0\t0.000000
     9     1\t0\t0.000000
  oops
"""


def write_smart(folder: Path, rel: str = SMART_REL) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "TOY.ALL").write_text(SMART_ALL, encoding="ascii")
    (folder / "TOY.QRY").write_text(SMART_QRY, encoding="ascii")
    (folder / "TOY.REL").write_text(rel, encoding="ascii")
    (folder / "README.md").write_text("# Toy collection", encoding="ascii")
    return folder


def test_smart_collection_documents_queries_and_judgments(tmp_path):
    folder = write_smart(tmp_path / "toy")
    assert SmartReader.accepts(folder)
    dataset = SmartReader().read(folder)
    assert dataset.documents == [
        Document(
            "1",
            "First abstract\n  with an indented line.",
            "A Title on Two Lines",
            {"authors": "Doe, J.; Roe, R."},
        ),
        Document("2", ".NET is not a tag.", "Inline title"),
    ]
    assert dataset.eval_items == [
        EvalItem("What is first?", ("1", "2")),
        EvalItem("Titled query\n\nWhat else?", ("2",)),
    ]
    assert dataset.skipped == [
        Skipped("TOY.ALL:20", "'.I' without an id"),
        Skipped("TOY.ALL:17", "document 3 has no .W text"),
        Skipped("TOY.REL:6", "expected 'query_id doc_id ...'"),
        Skipped("TOY.REL", "judgments for query 9, which has no query"),
    ]


def test_smart_documents_file_alone_without_judgments(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.all").write_text(SMART_ALL, encoding="ascii")
    dataset = SmartReader().read(folder / "toy.all")
    assert [doc.id for doc in dataset.documents] == ["1", "2"]
    assert dataset.eval_items == []


def test_smart_file_without_records_is_an_error(tmp_path):
    path = tmp_path / "X.ALL"
    path.write_text("just some text\n", encoding="ascii")
    with pytest.raises(DatasetError, match=r"^X.ALL: no '.I <id>' record; not a SMART file$"):
        SmartReader().read(path)


def test_smart_folder_with_two_collections_is_ambiguous(tmp_path):
    for name in ("A.ALL", "B.ALL"):
        (tmp_path / name).write_text(".I 1\n.W\nx\n", encoding="ascii")
    with pytest.raises(DatasetError, match=r"expected one SMART .ALL file, found A.ALL, B.ALL"):
        SmartReader().read(tmp_path)


@pytest.mark.skipif(not CISI.is_dir(), reason=f"CISI collection not found at {CISI}")
def test_cisi_collection_imports_completely():
    dataset = SmartReader().read(CISI)
    assert len(dataset.documents) == 1460
    assert len({doc.id for doc in dataset.documents}) == 1460
    assert dataset.skipped == []
    first = dataset.documents[0]
    assert first.id == "1"
    assert first.title == "18 Editions of the Dewey Decimal Classifications"
    assert first.text.startswith("The present study is a history of the DEWEY Decimal")
    assert first.metadata == {"authors": "Comaromi, J.P."}
    assert all(doc.text for doc in dataset.documents)
    assert len(dataset.eval_items) == 76
    assert sum(len(item.relevant_ids) for item in dataset.eval_items) == 3114
    assert dataset.eval_items[0].question.startswith("What problems and concerns are there")
    assert dataset.eval_items[0].relevant_ids[:3] == ("28", "35", "38")
    ids = {doc.id for doc in dataset.documents}
    assert all(set(item.relevant_ids) <= ids for item in dataset.eval_items)
    assert any(
        item.question.startswith("Directions in Library Networking\n\n")
        for item in dataset.eval_items
    )


# --- no input gives a traceback -------------------------------------------------------------------


def outcome(reader: DatasetReader, path: Path) -> Dataset | DatasetError:
    try:
        return reader.read(path)
    except DatasetError as error:
        return error


READERS_BY_NAME = {
    "docs.jsonl": JsonlReader,
    "docs.csv": CsvReader,
    "docs.txt": TextReader,
    "docs.md": TextReader,
    "docs.zip": TextReader,
    "docs.ALL": SmartReader,
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(READERS_BY_NAME)), data=st.binary(max_size=300))
def test_arbitrary_bytes_give_a_dataset_or_a_dataset_error(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    assert isinstance(outcome(READERS_BY_NAME[name](), path), Dataset | DatasetError)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["docs.jsonl", "docs.csv", "docs.ALL"]),
    text=st.text(alphabet=st.sampled_from('{}[]",:\n .IWT\\u0d8a1x\r'), max_size=200),
)
def test_arbitrary_structured_text_gives_a_dataset_or_a_dataset_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert isinstance(outcome(READERS_BY_NAME[name](), path), Dataset | DatasetError)
