"""load_dataset from local paths and S3 (moto), format detection, and the JSONL round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.datasets import (
    Dataset,
    DatasetError,
    Document,
    EvalItem,
    Limits,
    load_dataset,
    refine,
    source,
    write_jsonl,
)

CISI = Path(
    os.environ.get("CISI_PATH")
    or Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cisi"
)
BUCKET = "datasets-test"
DOCS = "\n".join(json.dumps({"id": n, "text": f"document {n}"}) for n in (1, 2)) + "\n"
EVAL = json.dumps({"question": "which?", "relevant_ids": [2]}) + "\n"


# --- local paths ---------------------------------------------------------------------------------


def test_local_formats_are_detected(tmp_path):
    (tmp_path / "jsonl").mkdir()
    (tmp_path / "jsonl" / "documents.jsonl").write_text(DOCS, encoding="utf-8")
    (tmp_path / "jsonl" / "README.md").write_text("# not a document", encoding="utf-8")
    (tmp_path / "docs.csv").write_text("id,text\n1,one\n", encoding="utf-8")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("# A\nbody", encoding="utf-8")
    assert [doc.id for doc in load_dataset(str(tmp_path / "jsonl")).documents] == ["1", "2"]
    assert load_dataset(str(tmp_path / "docs.csv")).documents == [Document("1", "one")]
    assert load_dataset(str(tmp_path / "notes")).documents == [Document("a.md", "# A\nbody", "A")]


@pytest.mark.skipif(not CISI.is_dir(), reason=f"CISI collection not found at {CISI}")
def test_cisi_folder_with_its_readme_is_read_as_smart():
    dataset = load_dataset(str(CISI))
    assert (len(dataset.documents), len(dataset.eval_items)) == (1460, 76)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file or folder"),
        (lambda p: p.write_bytes(b"%PDF-1.4"), "unknown dataset format; expected a .jsonl"),
        (lambda p: p.mkdir(), "empty dataset (an empty folder)"),
        (lambda p: p.write_text("", encoding="utf-8"), "empty dataset (no documents)"),
    ],
    ids=["missing", "unknown", "empty-folder", "empty-file"],
)
def test_unusable_local_paths_name_the_path(tmp_path, setup, message):
    path = tmp_path / ("data.pdf" if "unknown" in message else "data.jsonl")
    if "folder" in message:
        path = tmp_path / "data"
    setup(path)
    with pytest.raises(DatasetError) as error:
        load_dataset(str(path))
    assert str(error.value).startswith(f"{path}: {message}")


def test_folder_of_only_unsupported_files_is_unknown(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset(str(tmp_path))


def test_dataset_with_only_skipped_records_says_why(tmp_path):
    (tmp_path / "docs.csv").write_text("id,text\n,orphan\n", encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        load_dataset(str(tmp_path / "docs.csv"))
    assert str(error.value) == (
        f"{tmp_path / 'docs.csv'}: empty dataset (no documents; the first of 1 skipped:"
        " docs.csv:2: empty 'id')"
    )


# --- the JSONL round trip ------------------------------------------------------------------------


@pytest.mark.skipif(not CISI.is_dir(), reason=f"CISI collection not found at {CISI}")
def test_refined_cisi_round_trips_through_jsonl(tmp_path):
    refined, _ = refine(load_dataset(str(CISI)))
    write_jsonl(refined, tmp_path / "refined")
    assert sorted(p.name for p in (tmp_path / "refined").iterdir()) == [
        "documents.jsonl",
        "eval.jsonl",
    ]
    back = load_dataset(str(tmp_path / "refined"))
    assert back.documents == refined.documents
    assert back.eval_items == refined.eval_items
    assert back.skipped == []


awkward_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]),  # lone surrogates are not Unicode text
    max_size=30,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(
        st.builds(
            Document,
            id=awkward_text.filter(str.strip),
            text=awkward_text.map(lambda t: t + "\u2028\x85 x"),
            title=awkward_text,
            metadata=st.dictionaries(
                st.sampled_from(["id", "text", "title", "metadata", "", "k\n"]), awkward_text
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    questions=st.lists(awkward_text, max_size=3),
)
def test_any_refined_dataset_round_trips_through_jsonl(tmp_path, docs, questions):
    items = [EvalItem(q, (docs[0].id,)) for q in questions]
    refined, _ = refine(Dataset(docs, items))
    write_jsonl(refined, tmp_path / "copy")
    back = load_dataset(str(tmp_path / "copy"))
    assert (back.documents, back.eval_items) == (refined.documents, refined.eval_items)


def test_write_jsonl_round_trips_metadata_named_like_fields(tmp_path):
    dataset = Dataset(
        [Document("1", "t", "T", {"id": "x", "text": "y", "metadata": "{}"})],
        [EvalItem("q", ("1",), "a"), EvalItem("only an answer", (), "b")],
    )
    write_jsonl(dataset, tmp_path)
    back = load_dataset(str(tmp_path))
    assert (back.documents, back.eval_items) == (dataset.documents, dataset.eval_items)


# --- S3 (moto) -----------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(client, key: str, body: str | bytes) -> None:
    client.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_s3_single_object(s3):
    put(s3, "uploads/docs.csv", "id,title,text\n1,One,first\n")
    dataset = load_dataset(f"s3://{BUCKET}/uploads/docs.csv")
    assert dataset.documents == [Document("1", "first", "One")]


def test_s3_prefix_of_several_objects(s3):
    put(s3, "sets/cisi/documents.jsonl", DOCS)
    put(s3, "sets/cisi/eval.jsonl", EVAL)
    put(s3, "sets/cisi/", b"")  # a console-made "folder" marker
    put(s3, "sets/cisi-other/documents.jsonl", "not json\n")
    for uri in (f"s3://{BUCKET}/sets/cisi", f"s3://{BUCKET}/sets/cisi/"):
        dataset = load_dataset(uri)
        assert [doc.id for doc in dataset.documents] == ["1", "2"]
        assert dataset.eval_items == [EvalItem("which?", ("2",))]


def test_s3_prefix_with_nested_text_files(s3):
    put(s3, "notes/a.md", "# A\nalpha")
    put(s3, "notes/deep/b.txt", "beta")
    dataset = load_dataset(f"s3://{BUCKET}/notes/")
    assert [(doc.id, doc.title) for doc in dataset.documents] == [
        ("a.md", "A"),
        ("deep/b.txt", "b"),
    ]


def test_s3_prefix_holding_one_file_reads_that_file(s3):
    put(s3, "one/docs.csv", "id,text\n1,one\n")
    assert load_dataset(f"s3://{BUCKET}/one").documents == [Document("1", "one")]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"s3://{BUCKET}/nothing/here.jsonl", "no such object, and no objects under that prefix"),
        ("s3://no-such-bucket-xyz/docs.jsonl", "no such bucket"),
        ("s3:///docs.jsonl", "no bucket in the S3 uri"),
    ],
)
def test_s3_missing_object_or_bucket_names_the_uri(s3, uri, message):
    with pytest.raises(DatasetError) as error:
        load_dataset(uri)
    assert str(error.value) == f"{uri}: {message}"


def test_s3_oversize_object_is_refused_before_downloading(s3, monkeypatch):
    put(s3, "big/docs.jsonl", DOCS)
    fetched = []
    monkeypatch.setattr(source, "_fetch", lambda *args: fetched.append(args))
    with pytest.raises(DatasetError) as error:
        load_dataset(f"s3://{BUCKET}/big/docs.jsonl", Limits(max_file_bytes=10))
    assert str(error.value) == (
        f"s3://{BUCKET}/big/docs.jsonl: {len(DOCS)} bytes is over the limit of 10 bytes"
    )
    with pytest.raises(DatasetError, match=f"s3://{BUCKET}/big/docs.jsonl: .* over the limit"):
        load_dataset(f"s3://{BUCKET}/big/", Limits(max_file_bytes=10))
    assert fetched == []


def test_s3_prefix_over_the_download_limit_is_refused(s3):
    put(s3, "many/documents.jsonl", DOCS)
    put(s3, "many/eval.jsonl", EVAL)
    total = len(DOCS) + len(EVAL)
    with pytest.raises(DatasetError) as error:
        load_dataset(f"s3://{BUCKET}/many/", Limits(max_download_bytes=total - 1))
    assert str(error.value) == (
        f"s3://{BUCKET}/many/: 2 objects of {total} bytes in all, over the limit of"
        f" {total - 1} bytes"
    )


def test_s3_key_escaping_the_download_folder_is_refused(s3):
    put(s3, "evil/../../outside.md", "x")
    put(s3, "evil/ok.md", "ok")
    with pytest.raises(DatasetError) as error:
        load_dataset(f"s3://{BUCKET}/evil/")
    assert str(error.value) == f"s3://{BUCKET}/evil/../../outside.md: key is not a safe file path"


def test_s3_keys_that_cannot_share_a_folder_are_an_error(s3):
    put(s3, "clash/a", "file")
    put(s3, "clash/a/b.md", "a file under a folder of the same name")
    with pytest.raises(DatasetError, match=f"^s3://{BUCKET}/clash/: cannot be saved locally"):
        load_dataset(f"s3://{BUCKET}/clash/")


def test_s3_reader_errors_name_the_uri_and_file(s3):
    put(s3, "bad/documents.jsonl", b'{"id": 1, "text": "caf\xe9"}\n')
    with pytest.raises(DatasetError) as error:
        load_dataset(f"s3://{BUCKET}/bad/documents.jsonl")
    assert str(error.value) == (
        f"s3://{BUCKET}/bad/documents.jsonl: documents.jsonl: not valid UTF-8 at byte offset 22"
        " (line 1); save the file as UTF-8"
    )


def test_s3_empty_dataset_names_the_uri(s3):
    put(s3, "empty/documents.jsonl", "\n")
    with pytest.raises(DatasetError) as error:
        load_dataset(f"s3://{BUCKET}/empty/")
    assert str(error.value) == f"s3://{BUCKET}/empty/: empty dataset (no documents)"


def test_s3_download_is_removed_afterwards(s3, tmp_path, monkeypatch):
    monkeypatch.setattr(source.tempfile, "tempdir", str(tmp_path))
    put(s3, "tmp/docs.csv", "id,text\n1,one\n")
    load_dataset(f"s3://{BUCKET}/tmp/docs.csv")
    assert list(tmp_path.iterdir()) == []
