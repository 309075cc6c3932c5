"""OpenSearchKnowledgeBase: the exact HTTP requests it sends, through a fake connection.

The client is a real ``opensearchpy.OpenSearch`` (real transport, serializer and error
mapping); only the connection class is replaced, so nothing touches the network.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests
from botocore.credentials import Credentials
from opensearchpy import AWSV4SignerAuth, OpenSearch
from opensearchpy.connection import Connection
from opensearchpy.exceptions import ConnectionError as OSConnectionError

from chalicelib.config import settings as load_settings
from chalicelib.kb import Chunk, KnowledgeBaseError, get_knowledge_base, reset_knowledge_base_cache
from chalicelib.kb.opensearch import (
    OpenSearchKnowledgeBase,
    build_client,
    index_body,
    innerproduct_score_to_cosine,
)

AOSS_URL = "https://abc123.eu-west-1.aoss.amazonaws.com"
ES_URL = "https://search-kb-xyz.eu-west-1.es.amazonaws.com"


@dataclass
class Sent:
    method: str
    url: str
    params: dict[str, Any]
    body: Any  # decoded JSON, a list of decoded lines for ndjson, or None


class FakeConnection(Connection):
    """Records each request; answers from ``routes`` keyed by (method, url)."""

    sent: list[Sent]
    routes: dict[tuple[str, str], Any]

    def perform_request(
        self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None
    ):
        path, _, query = url.partition("?")
        params = {k: v.decode() if isinstance(v, bytes) else v for k, v in (params or {}).items()}
        if query:
            params.update(dict(part.split("=", 1) for part in query.split("&")))
        self.sent.append(Sent(method, path, params, _decode(body)))
        answer = self.routes.get((method, path), (200, {}))
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        raw = json.dumps(payload)
        if not 200 <= status < 300 and status not in ignore:
            self._raise_error(status, raw, "application/json")
        return status, {"content-type": "application/json"}, raw


def _decode(body: Any) -> Any:
    if body is None:
        return None
    text = body.decode() if isinstance(body, bytes) else body
    try:
        return json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line]


@pytest.fixture
def fake():
    class Conn(FakeConnection):
        sent: list[Sent] = []  # noqa: RUF012 - per-test class
        routes: dict[tuple[str, str], Any] = {}  # noqa: RUF012

    return Conn


def make_kb(fake, service: str = "es") -> OpenSearchKnowledgeBase:
    client = OpenSearch(
        hosts=[{"host": "fake", "port": 9200}], connection_class=fake, max_retries=0
    )
    return OpenSearchKnowledgeBase(client, service=service)


def not_found(index: str) -> tuple[int, dict[str, Any]]:
    return 404, {
        "error": {"type": "index_not_found_exception", "reason": f"no such index [{index}]"},
        "status": 404,
    }


def hit(chunk: Chunk, score: float, index: str = "kb-v1", _id: str | None = None) -> dict:
    return {
        "_index": index,
        "_id": _id or chunk.chunk_id,
        "_score": score,
        "_source": {
            "chunk_id": chunk.chunk_id,
            "doc_id": chunk.doc_id,
            "position": chunk.position,
            "title": chunk.title,
            "text": chunk.text,
        },
    }


def search_response(*hits: dict) -> tuple[int, dict]:
    return 200, {"hits": {"total": {"value": len(hits)}, "hits": list(hits)}}


A = Chunk("a", 0, "Runners train for months.", "Marathon")
B = Chunk("b", 3, "Boil the spaghetti.", "Pasta")


# ------------------------------------------------------------------------ index lifecycle


def test_create_index_sends_knn_mapping(fake):
    make_kb(fake).create_index("kb-v1", 384)
    (sent,) = fake.sent
    assert (sent.method, sent.url) == ("PUT", "/kb-v1")
    assert sent.body == index_body(384)
    assert sent.body["settings"]["index"] == {"knn": True}
    props = sent.body["mappings"]["properties"]
    assert props["vector"] == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {
            "name": "hnsw",
            "engine": "faiss",
            "space_type": "innerproduct",
            "parameters": {"m": 16, "ef_construction": 128},
        },
    }
    assert props["title"] == {"type": "text", "analyzer": "english_folded"}
    assert props["text"] == {"type": "text", "analyzer": "english_folded"}
    assert props["doc_id"] == {"type": "keyword"}
    assert props["chunk_id"] == {"type": "keyword"}
    assert props["position"] == {"type": "integer"}
    assert "similarity" not in props["text"]  # default BM25
    assert "number_of_shards" not in json.dumps(sent.body)  # Serverless rejects it
    analyzer = sent.body["settings"]["analysis"]["analyzer"]["english_folded"]
    assert analyzer["filter"] == [
        "english_possessive_stemmer",
        "lowercase",
        "asciifolding",
        "english_stop",
        "english_stemmer",
    ]


def test_create_existing_index_is_a_knowledge_base_error(fake):
    fake.routes[("PUT", "/kb-v1")] = (
        400,
        {"error": {"type": "resource_already_exists_exception", "reason": "index [kb-v1] exists"}},
    )
    with pytest.raises(KnowledgeBaseError, match=r"kb-v1.*resource_already_exists_exception"):
        make_kb(fake).create_index("kb-v1", 384)


def test_delete_index_ignores_missing(fake):
    kb = make_kb(fake)
    kb.delete_index("kb-v1")
    fake.routes[("DELETE", "/gone")] = not_found("gone")
    kb.delete_index("gone")
    assert [(s.method, s.url) for s in fake.sent] == [("DELETE", "/kb-v1"), ("DELETE", "/gone")]


def test_list_indexes_filters_prefix_and_hidden(fake):
    fake.routes[("GET", "/kb-*")] = (
        200,
        {"kb-v2": {}, "kb-v1": {}, "other-v1": {}},  # "other-v1" matched through an alias
    )
    assert make_kb(fake).list_indexes("kb-") == ["kb-v1", "kb-v2"]
    assert fake.sent[0].params == {"allow_no_indices": "true"}
    fake.routes[("GET", "/*")] = (200, {".kibana_1": {}, "x": {}})
    assert make_kb(fake).list_indexes() == ["x"]


def test_finalize_refreshes_except_on_serverless(fake):
    make_kb(fake).finalize("kb-v1")
    assert [(s.method, s.url) for s in fake.sent] == [("POST", "/kb-v1/_refresh")]
    fake.sent.clear()
    make_kb(fake, service="aoss").finalize("kb-v1")
    assert fake.sent == []


def test_count(fake):
    fake.routes[("POST", "/live/_count")] = (200, {"count": 42, "_shards": {}})
    assert make_kb(fake).count("live") == 42
    (sent,) = fake.sent
    assert (sent.method, sent.url) == ("POST", "/live/_count")
    assert sent.body is None


# ---------------------------------------------------------------------------------- bulk


def bulk_ok(n: int) -> tuple[int, dict]:
    return 200, {
        "took": 1,
        "errors": False,
        "items": [{"index": {"status": 201}} for _ in range(n)],
    }


def test_upsert_sends_bulk_with_chunk_ids(fake):
    fake.routes[("POST", "/_bulk")] = bulk_ok(2)
    make_kb(fake).upsert("kb-v1", [A, B], [[3.0, 4.0], [0.0, 2.0]])
    (sent,) = fake.sent
    assert (sent.method, sent.url) == ("POST", "/_bulk")
    assert sent.body == [
        {"index": {"_index": "kb-v1", "_id": "a#0"}},
        {
            "chunk_id": "a#0",
            "doc_id": "a",
            "position": 0,
            "title": "Marathon",
            "text": "Runners train for months.",
            "vector": [0.6, 0.8],  # re-normalised
        },
        {"index": {"_index": "kb-v1", "_id": "b#3"}},
        {
            "chunk_id": "b#3",
            "doc_id": "b",
            "position": 3,
            "title": "Pasta",
            "text": "Boil the spaghetti.",
            "vector": [0.0, 1.0],
        },
    ]


def test_upsert_last_duplicate_wins_and_batches(fake, monkeypatch):
    monkeypatch.setattr("chalicelib.kb.opensearch.BULK_CHUNK", 2)
    fake.routes[("POST", "/_bulk")] = bulk_ok(2)
    chunks = [Chunk("d", i, f"t{i}") for i in range(3)] + [Chunk("d", 0, "new")]
    make_kb(fake).upsert("kb-v1", chunks, [[1.0, 0.0]] * 4)
    assert [len(s.body) // 2 for s in fake.sent] == [2, 1]
    assert fake.sent[0].body[1]["text"] == "new"


def test_upsert_item_errors_are_summarised(fake):
    fake.routes[("POST", "/_bulk")] = (
        200,
        {
            "took": 1,
            "errors": True,
            "items": [
                {
                    "index": {
                        "_index": "kb-v1",
                        "_id": "a#0",
                        "status": 400,
                        "error": {
                            "type": "mapper_parsing_exception",
                            "reason": "vector dimension mismatch",
                        },
                    }
                },
                {"index": {"_index": "kb-v1", "_id": "b#3", "status": 201}},
            ],
        },
    )
    with pytest.raises(KnowledgeBaseError) as err:
        make_kb(fake).upsert("kb-v1", [A, B], [[1.0, 0.0], [0.0, 1.0]])
    message = str(err.value)
    assert "1 item(s) failed" in message
    assert "mapper_parsing_exception: vector dimension mismatch" in message
    assert "kb-v1" in message


def test_upsert_rejects_mismatched_lengths_and_zero_vectors(fake):
    kb = make_kb(fake)
    with pytest.raises(KnowledgeBaseError, match="vectors"):
        kb.upsert("kb-v1", [A, B], [[1.0]])
    with pytest.raises(KnowledgeBaseError, match="zero vector"):
        kb.upsert("kb-v1", [A], [[0.0, 0.0]])
    assert fake.sent == []


def test_serverless_upsert_deletes_old_copies_and_sends_no_ids(fake):
    fake.routes[("POST", "/kb-v1/_search")] = search_response(
        hit(A, 1.0, _id="auto-1"), hit(A, 1.0, _id="auto-2")
    )
    fake.routes[("POST", "/_bulk")] = bulk_ok(4)
    make_kb(fake, service="aoss").upsert("kb-v1", [A, B], [[1.0, 0.0], [0.0, 1.0]])
    lookup, sent = fake.sent
    assert (lookup.method, lookup.url) == ("POST", "/kb-v1/_search")
    assert lookup.body == {
        "size": 8,
        "_source": False,
        "query": {"terms": {"chunk_id": ["a#0", "b#3"]}},
    }
    assert sent.body[0:2] == [
        {"delete": {"_index": "kb-v1", "_id": "auto-1"}},
        {"delete": {"_index": "kb-v1", "_id": "auto-2"}},
    ]
    assert sent.body[2] == {"index": {"_index": "kb-v1"}}
    assert sent.body[3]["chunk_id"] == "a#0"
    assert sent.body[4] == {"index": {"_index": "kb-v1"}}
    assert all("_id" not in line.get("index", {}) for line in sent.body)


def test_serverless_upsert_tolerates_already_deleted_copies(fake):
    fake.routes[("POST", "/kb-v1/_search")] = search_response(hit(A, 1.0, _id="auto-1"))
    fake.routes[("POST", "/_bulk")] = (
        200,
        {
            "errors": True,
            "items": [
                {"delete": {"_id": "auto-1", "status": 404, "result": "not_found"}},
                {"index": {"_id": "x", "status": 201}},
            ],
        },
    )
    make_kb(fake, service="aoss").upsert("kb-v1", [A], [[1.0, 0.0]])


# ------------------------------------------------------------------------------- search


def test_dense_search_sends_knn_query_and_returns_cosine(fake):
    fake.routes[("POST", "/live/_search")] = search_response(
        hit(A, 1.9),
        hit(B, 1.0),
        hit(A, 0.8),  # ip 0.9, 0.0, -0.25 (dup of A dropped)
    )
    hits = make_kb(fake).dense_search("live", [0.0, 3.0, 4.0], 3)
    (sent,) = fake.sent
    assert (sent.method, sent.url) == ("POST", "/live/_search")
    assert sent.body == {
        "size": 3,
        "_source": {"excludes": ["vector"]},
        "query": {"knn": {"vector": {"vector": [0.0, 0.6, 0.8], "k": 3}}},
    }
    assert [h.chunk for h in hits] == [A, B]
    assert [h.score for h in hits] == pytest.approx([0.9, 0.0])


@pytest.mark.parametrize("ip", [1.0, 0.75, 0.1, 0.0, -0.3, -1.0])
def test_innerproduct_score_inverts_faiss_formula(ip):
    score = 1 + ip if ip > 0 else 1 / (1 - ip)  # OpenSearch's faiss innerproduct score
    assert innerproduct_score_to_cosine(score) == pytest.approx(ip)


def test_bm25_search_sends_multi_match(fake):
    fake.routes[("POST", "/live/_search")] = search_response(hit(B, 7.5), hit(A, 2.25))
    hits = make_kb(fake).bm25_search("live", "boil spaghetti", 10)
    (sent,) = fake.sent
    assert (sent.method, sent.url) == ("POST", "/live/_search")
    assert sent.body == {
        "size": 10,
        "_source": {"excludes": ["vector"]},
        "query": {
            "multi_match": {
                "query": "boil spaghetti",
                "fields": ["title", "text"],
                "type": "most_fields",
            }
        },
    }
    assert [(h.chunk, h.score) for h in hits] == [(B, 7.5), (A, 2.25)]


def test_blank_queries_and_zero_k_send_nothing(fake):
    kb = make_kb(fake)
    assert kb.bm25_search("live", "  ", 5) == []
    assert kb.dense_search("live", [1.0], 0) == []
    assert fake.sent == []


def test_hybrid_search_fuses_client_side(fake):
    responses = iter([search_response(hit(A, 1.9), hit(B, 1.5)), search_response(hit(B, 3.0))])

    class Routes(dict):
        def get(self, key, default=None):
            return next(responses) if key == ("POST", "/live/_search") else default

    fake.routes = Routes()
    hits = make_kb(fake).hybrid_search("live", "spaghetti", [1.0, 0.0], k=2, depth=20)
    assert [s.body["size"] for s in fake.sent] == [20, 20]
    assert [h.chunk for h in hits] == [B, A]
    assert hits[0].score == pytest.approx(1 / 62 + 1 / 61)


# ------------------------------------------------------------------------------ aliases


def test_set_alias_first_time_adds_only(fake):
    fake.routes[("GET", "/_alias/live")] = (404, {"error": "alias [live] missing", "status": 404})
    assert make_kb(fake).set_alias("live", "kb-v1") is None
    get, post = fake.sent
    assert (get.method, get.url) == ("GET", "/_alias/live")
    assert (post.method, post.url) == ("POST", "/_aliases")
    assert post.body == {"actions": [{"add": {"index": "kb-v1", "alias": "live"}}]}


def test_set_alias_swaps_in_one_atomic_request(fake):
    fake.routes[("GET", "/_alias/live")] = (200, {"kb-v1": {"aliases": {"live": {}}}})
    assert make_kb(fake).set_alias("live", "kb-v2") == "kb-v1"
    posts = [s for s in fake.sent if s.method == "POST"]
    assert len(posts) == 1
    assert posts[0].body == {
        "actions": [
            {"remove": {"index": "kb-v1", "alias": "live"}},
            {"add": {"index": "kb-v2", "alias": "live"}},
        ]
    }


def test_set_alias_to_missing_index_fails(fake):
    fake.routes[("GET", "/_alias/live")] = (404, {"status": 404})
    fake.routes[("POST", "/_aliases")] = not_found("kb-v9")
    with pytest.raises(KnowledgeBaseError, match=r"live.*kb-v9"):
        make_kb(fake).set_alias("live", "kb-v9")


def test_remove_alias(fake):
    fake.routes[("GET", "/_alias/live")] = (200, {"kb-v1": {"aliases": {"live": {}}}})
    assert make_kb(fake).remove_alias("live") == "kb-v1"
    post = fake.sent[-1]
    assert (post.method, post.url) == ("POST", "/_aliases")
    assert post.body == {"actions": [{"remove": {"index": "kb-v1", "alias": "live"}}]}
    fake.sent.clear()
    fake.routes[("GET", "/_alias/live")] = (404, {"status": 404})
    assert make_kb(fake).remove_alias("live") is None
    assert [s.method for s in fake.sent] == ["GET"]


def test_resolve_alias(fake):
    kb = make_kb(fake)
    fake.routes[("GET", "/_alias/live")] = (200, {"kb-v2": {"aliases": {"live": {}}}})
    assert kb.resolve_alias("live") == "kb-v2"
    fake.routes[("GET", "/_alias/live")] = (404, {"status": 404})
    assert kb.resolve_alias("live") is None


# ------------------------------------------------------------------------------- errors


def test_missing_index_is_a_knowledge_base_error(fake):
    fake.routes[("POST", "/nope/_search")] = not_found("nope")
    fake.routes[("POST", "/nope/_count")] = not_found("nope")
    kb = make_kb(fake)
    with pytest.raises(KnowledgeBaseError, match=r"nope.*index_not_found_exception"):
        kb.bm25_search("nope", "x", 3)
    with pytest.raises(KnowledgeBaseError, match="nope"):
        kb.dense_search("nope", [1.0], 3)
    with pytest.raises(KnowledgeBaseError, match="nope"):
        kb.count("nope")
    fake.routes[("POST", "/nope/_refresh")] = not_found("nope")
    with pytest.raises(KnowledgeBaseError, match="nope"):
        kb.finalize("nope")


def test_connection_error_is_a_knowledge_base_error(fake):
    fake.routes[("POST", "/live/_search")] = OSConnectionError(
        "N/A", "connection refused", OSError("refused")
    )
    with pytest.raises(KnowledgeBaseError, match="cannot reach OpenSearch"):
        make_kb(fake).bm25_search("live", "x", 3)


def test_server_error_is_a_knowledge_base_error(fake):
    fake.routes[("POST", "/_bulk")] = (503, {"error": {"type": "unavailable", "reason": "busy"}})
    with pytest.raises(KnowledgeBaseError, match=r"503.*busy"):
        make_kb(fake).upsert("kb-v1", [A], [[1.0]])
    fake.routes[("POST", "/_aliases")] = (403, {"error": {"type": "security", "reason": "denied"}})
    with pytest.raises(KnowledgeBaseError, match="403"):
        make_kb(fake).set_alias("live", "kb-v1")


# -------------------------------------------------------------------- client construction


class FakeSession:
    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials

    def get_credentials(self) -> Credentials | None:
        return self.credentials


CREDS = Credentials("AKIDEXAMPLE", "secret", "token")


def _connection(client: OpenSearch) -> Any:
    return client.transport.connection_pool.connections[0]


@pytest.mark.parametrize("url,service", [(AOSS_URL, "aoss"), (ES_URL, "es")])
def test_sigv4_client_signs_for_the_service(url, service):
    client = build_client(url, service, "eu-west-1", FakeSession(CREDS))
    conn = _connection(client)
    assert conn.host == url + ":443"
    assert conn.use_ssl is True
    assert conn.session.verify  # certificates verified (True or a CA bundle path)
    auth = conn.session.auth
    assert isinstance(auth, AWSV4SignerAuth)
    assert auth.service == service
    signed = auth(requests.Request("GET", url + "/_alias/live").prepare())
    header = signed.headers["Authorization"]
    assert header.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert f"/eu-west-1/{service}/aws4_request" in header
    assert signed.headers["X-Amz-Security-Token"] == "token"


def test_sigv4_needs_credentials():
    with pytest.raises(KnowledgeBaseError, match="credentials"):
        build_client(AOSS_URL, "aoss", "eu-west-1", FakeSession(None))


def test_unknown_service_rejected():
    with pytest.raises(KnowledgeBaseError, match="service"):
        build_client(AOSS_URL, "solr", "eu-west-1", FakeSession(CREDS))


def test_local_url_has_no_auth():
    conn = _connection(build_client("http://localhost:9200", "aoss"))
    assert conn.host == "http://localhost:9200"
    assert conn.use_ssl is False
    assert conn.session.auth is None


def test_local_url_with_basic_auth():
    conn = _connection(build_client("https://admin:p%40ss@localhost:9200", "es"))
    assert conn.session.auth == ("admin", "p@ss")
    assert conn.host == "https://localhost:9200"


def test_missing_url_is_an_error():
    with pytest.raises(KnowledgeBaseError, match="OPENSEARCH_URL"):
        build_client("", "aoss")


def test_from_settings_uses_boto3_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = replace(
        load_settings(), opensearch_url=AOSS_URL, opensearch_service="aoss", region="eu-west-1"
    )
    kb = OpenSearchKnowledgeBase.from_settings(settings)
    assert kb.serverless
    auth = _connection(kb.client).session.auth
    signed = auth(requests.Request("GET", AOSS_URL + "/_count").prepare())
    assert "Credential=AKIDFROMENV/" in signed.headers["Authorization"]
    assert "/eu-west-1/aoss/" in signed.headers["Authorization"]


def test_from_settings_local_cluster_is_not_serverless():
    settings = replace(
        load_settings(), opensearch_url="http://localhost:9200", opensearch_service="aoss"
    )
    assert OpenSearchKnowledgeBase.from_settings(settings).service == "es"


def test_factory_builds_and_caches_opensearch(monkeypatch):
    reset_knowledge_base_cache()
    settings = replace(
        load_settings(), kb_backend="opensearch", opensearch_url="http://localhost:9200"
    )
    kb = get_knowledge_base(settings)
    assert isinstance(kb, OpenSearchKnowledgeBase)
    assert get_knowledge_base(settings) is kb
    reset_knowledge_base_cache()
    assert get_knowledge_base(settings) is not kb
    reset_knowledge_base_cache()


def test_factory_rejects_unknown_backend():
    with pytest.raises(KnowledgeBaseError, match="elastic"):
        get_knowledge_base(replace(load_settings(), kb_backend="elastic"))


def test_normalised_vectors_are_unit_length(fake):
    fake.routes[("POST", "/_bulk")] = bulk_ok(1)
    make_kb(fake).upsert("kb-v1", [A], [[1.0, 2.0, 2.0]])
    vector = fake.sent[0].body[1]["vector"]
    assert math.fsum(x * x for x in vector) == pytest.approx(1.0)
