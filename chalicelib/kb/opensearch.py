"""Knowledge base on OpenSearch: Amazon OpenSearch Serverless ("aoss"), a managed domain
("es") or a local cluster.

Index mapping (see :func:`index_body`):

* ``vector``: ``knn_vector`` with HNSW on the **faiss** engine and the **innerproduct**
  space. faiss/HNSW is the engine OpenSearch Serverless vector collections are built
  around (nmslib is deprecated; faiss ``cosinesimil`` only arrived in OpenSearch 2.19, which
  Serverless may not expose), and it works the same on managed domains and local clusters.
  Our vectors are L2-normalised (all-MiniLM-L6-v2), so the inner product *is* the cosine
  similarity; :meth:`OpenSearchKnowledgeBase.upsert` and ``dense_search`` re-normalise
  defensively so that stays true. The k-NN score is mapped back to the cosine
  (:func:`innerproduct_score_to_cosine`), so scores match the LanceDB backend.
* ``title`` / ``text``: ``text`` fields with the default BM25 similarity and an English
  analyzer (standard tokenizer, possessive removal, lowercase, ASCII folding, English stop
  words, English stemming): the same analysis the LanceDB backend's full-text index uses.
  BM25 queries are ``multi_match`` ``most_fields`` (per-field BM25 summed), as LanceDB's.
* ``doc_id`` / ``chunk_id``: ``keyword``; ``position``: ``integer``.

Hybrid search is the base class's client-side reciprocal-rank fusion: OpenSearch Serverless
has no search pipelines, so the ``hybrid`` query with a normalisation processor is not
available there, and fusing client-side gives identical rankings on both backends.

Serverless differences handled here (``service="aoss"``): there is no ``_refresh`` API (new
documents become searchable on their own after a few seconds), and vector collections
reject custom document ids, so an upsert there deletes the documents already holding those
chunk ids (found by a ``terms`` query on the ``chunk_id`` keyword) and indexes the new ones
with generated ids. Searches de-duplicate by chunk id, so a chunk written twice before the
collection caught up never shows twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlparse

from opensearchpy import OpenSearch, RequestsHttpConnection
from opensearchpy.exceptions import (
    ConnectionError as OSConnectionError,
)
from opensearchpy.exceptions import (
    NotFoundError,
    OpenSearchException,
    TransportError,
)
from opensearchpy.helpers import bulk

from chalicelib.kb.base import Chunk, ChunkHit, KnowledgeBase, KnowledgeBaseError

TEXT_FIELDS = ["title", "text"]
HNSW_PARAMETERS = {"m": 16, "ef_construction": 128}
BULK_CHUNK = 200  # documents per _bulk request (384 floats is ~4-8 KB of JSON each)
AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".on.aws")
_SOURCE = {"excludes": ["vector"]}


def index_body(dimension: int) -> dict[str, Any]:
    """The create-index body. No shard/replica settings: Serverless manages (and rejects) them."""
    settings: dict[str, Any] = {
        "index": {"knn": True},
        "analysis": {
            "filter": {
                "english_stop": {"type": "stop", "stopwords": "_english_"},
                "english_stemmer": {"type": "stemmer", "language": "english"},
                "english_possessive_stemmer": {
                    "type": "stemmer",
                    "language": "possessive_english",
                },
            },
            "analyzer": {
                "english_folded": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": [
                        "english_possessive_stemmer",
                        "lowercase",
                        "asciifolding",
                        "english_stop",
                        "english_stemmer",
                    ],
                }
            },
        },
    }
    return {
        "settings": settings,
        "mappings": {
            "properties": {
                "chunk_id": {"type": "keyword"},
                "doc_id": {"type": "keyword"},
                "position": {"type": "integer"},
                "title": {"type": "text", "analyzer": "english_folded"},
                "text": {"type": "text", "analyzer": "english_folded"},
                "vector": {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {
                        "name": "hnsw",
                        "engine": "faiss",
                        "space_type": "innerproduct",
                        "parameters": dict(HNSW_PARAMETERS),
                    },
                },
            }
        },
    }


def innerproduct_score_to_cosine(score: float) -> float:
    """Invert the faiss ``innerproduct`` score: ``1 + ip`` if ip > 0, else ``1 / (1 - ip)``.

    For unit vectors the inner product is the cosine similarity.
    """
    if score >= 1.0:
        return score - 1.0
    return 1.0 - 1.0 / score


def build_client(
    url: str, service: str = "aoss", region: str = "us-east-1", session: Any = None
) -> OpenSearch:
    """An OpenSearch client for ``url``.

    AWS endpoints (``*.amazonaws.com``, ``*.on.aws``) are signed with SigV4 using the boto3
    session's credentials, for ``service`` "aoss" (Serverless) or "es" (managed domain).
    Other URLs (a local cluster) use no auth, or basic auth from ``user:password@`` in the URL.
    """
    if not url:
        raise KnowledgeBaseError("OPENSEARCH_URL is not set")
    parsed = urlparse(url if "://" in url else f"https://{url}")
    host = parsed.hostname or ""
    use_ssl = parsed.scheme == "https"
    port = parsed.port or (443 if use_ssl else 9200)
    options: dict[str, Any] = {
        "hosts": [{"host": host, "port": port}],
        "use_ssl": use_ssl,
        "verify_certs": use_ssl,
        "connection_class": RequestsHttpConnection,
        "timeout": 30,
        "max_retries": 3,
        "retry_on_timeout": True,
        "http_compress": False,  # compressed bodies break SigV4 payload signing on aoss
    }
    if parsed.path and parsed.path != "/":
        options["url_prefix"] = parsed.path.rstrip("/")
    if is_aws_host(host):
        from opensearchpy import AWSV4SignerAuth

        if service not in ("aoss", "es"):
            raise KnowledgeBaseError(f"OpenSearch service must be 'aoss' or 'es', not {service!r}")
        if session is None:
            import boto3

            session = boto3.Session(region_name=region)
        credentials = session.get_credentials()
        if credentials is None:
            raise KnowledgeBaseError("no AWS credentials found to sign OpenSearch requests")
        options["http_auth"] = AWSV4SignerAuth(credentials, region, service)
    elif parsed.username:
        options["http_auth"] = (unquote(parsed.username), unquote(parsed.password or ""))
    return OpenSearch(**options)


def is_aws_host(host: str) -> bool:
    return host.endswith(AWS_HOST_SUFFIXES)


class OpenSearchKnowledgeBase(KnowledgeBase):
    """Knowledge base in an OpenSearch cluster or Serverless collection.

    ``service`` is "aoss" for OpenSearch Serverless (no refresh API, no custom document
    ids) or "es" for a managed domain or a local cluster.
    """

    def __init__(self, client: OpenSearch, service: str = "es") -> None:
        self.client = client
        self.service = service

    @property
    def serverless(self) -> bool:
        return self.service == "aoss"

    @classmethod
    def from_settings(cls, settings: Any, session: Any = None) -> OpenSearchKnowledgeBase:
        """Build from :func:`chalicelib.config.settings` (opensearch_url/_service, region).

        A non-AWS URL is a plain cluster, so it gets "es" behaviour whatever the service says.
        """
        client = build_client(
            settings.opensearch_url, settings.opensearch_service, settings.region, session
        )
        host = urlparse(
            settings.opensearch_url
            if "://" in settings.opensearch_url
            else f"https://{settings.opensearch_url}"
        ).hostname
        service = settings.opensearch_service if is_aws_host(host or "") else "es"
        return cls(client, service=service)

    # ----------------------------------------------------------------- index lifecycle

    def create_index(self, name: str, dimension: int) -> None:
        if dimension <= 0:
            raise KnowledgeBaseError(f"dimension must be positive, got {dimension}")
        with _translate(f"create index {name!r}"):
            self.client.indices.create(index=name, body=index_body(dimension))

    def delete_index(self, name: str) -> None:
        try:
            self.client.indices.delete(index=name)
        except NotFoundError:
            return
        except OpenSearchException as exc:
            raise _error(f"delete index {name!r}", exc) from exc

    def list_indexes(self, prefix: str = "") -> list[str]:
        with _translate(f"list indexes {prefix!r}*"):
            found = self.client.indices.get(index=f"{prefix}*", allow_no_indices=True)
        return sorted(
            name for name in found if name.startswith(prefix) and not name.startswith(".")
        )

    def finalize(self, index: str) -> None:
        """Refresh so every upsert is searchable; Serverless has no refresh API (it refreshes
        on its own within seconds), so there it is skipped."""
        if self.serverless:
            return
        with _translate(f"refresh {index!r}"):
            self.client.indices.refresh(index=index)

    # ------------------------------------------------------------------------- writes

    def upsert(
        self, index: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise KnowledgeBaseError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        latest: dict[str, dict[str, Any]] = {}
        for chunk, vector in zip(chunks, vectors, strict=True):
            latest[chunk.chunk_id] = {
                "chunk_id": chunk.chunk_id,
                "doc_id": chunk.doc_id,
                "position": chunk.position,
                "title": chunk.title,
                "text": chunk.text,
                "vector": _normalise(vector),
            }
        docs = list(latest.values())
        for start in range(0, len(docs), BULK_CHUNK):
            batch = docs[start : start + BULK_CHUNK]
            if self.serverless:
                actions = self._delete_existing(index, [d["chunk_id"] for d in batch])
                actions += [{"_op_type": "index", "_index": index, "_source": d} for d in batch]
            else:
                actions = [
                    {"_op_type": "index", "_index": index, "_id": d["chunk_id"], "_source": d}
                    for d in batch
                ]
            self._bulk(index, actions)

    def _delete_existing(self, index: str, chunk_ids: list[str]) -> list[dict[str, Any]]:
        """Bulk delete actions for documents already holding these chunk ids (Serverless)."""
        body = {
            "size": len(chunk_ids) * 4,
            "_source": False,
            "query": {"terms": {"chunk_id": chunk_ids}},
        }
        with _translate(f"look up chunk ids in {index!r}"):
            hits = self.client.search(index=index, body=body)["hits"]["hits"]
        return [{"_op_type": "delete", "_index": h["_index"], "_id": h["_id"]} for h in hits]

    def _bulk(self, index: str, actions: list[dict[str, Any]]) -> None:
        try:
            _, errors = bulk(
                self.client,
                actions,
                chunk_size=len(actions) or 1,
                raise_on_error=False,
                raise_on_exception=True,
            )
        except OpenSearchException as exc:
            raise _error(f"bulk upsert into {index!r}", exc) from exc
        failures = [e for e in errors if next(iter(e)) != "delete" or _status(e) != 404]
        if failures:
            raise KnowledgeBaseError(_summarise_bulk_errors(index, failures))

    # ------------------------------------------------------------------------ queries

    def dense_search(self, index: str, vector: Sequence[float], k: int) -> list[ChunkHit]:
        """HNSW k-NN; score is the cosine similarity (higher is better)."""
        if k <= 0:
            return []
        body = {
            "size": k,
            "_source": _SOURCE,
            "query": {"knn": {"vector": {"vector": _normalise(vector), "k": k}}},
        }
        hits = self._search(index, body, "k-NN search")
        return _dedupe(
            ChunkHit(_chunk(hit["_source"]), innerproduct_score_to_cosine(float(hit["_score"])))
            for hit in hits
        )

    def bm25_search(self, index: str, query: str, k: int) -> list[ChunkHit]:
        """BM25 over title and text, per-field scores summed (``most_fields``)."""
        if k <= 0 or not query.strip():
            return []
        body = {
            "size": k,
            "_source": _SOURCE,
            "query": {
                "multi_match": {"query": query, "fields": TEXT_FIELDS, "type": "most_fields"}
            },
        }
        hits = self._search(index, body, "BM25 search")
        return _dedupe(ChunkHit(_chunk(hit["_source"]), float(hit["_score"])) for hit in hits)

    def count(self, index: str) -> int:
        with _translate(f"count {index!r}"):
            return int(self.client.count(index=index)["count"])

    def _search(self, index: str, body: dict[str, Any], what: str) -> list[dict[str, Any]]:
        with _translate(f"{what} on {index!r}"):
            return self.client.search(index=index, body=body)["hits"]["hits"]

    # ------------------------------------------------------------------------ aliases

    def set_alias(self, alias: str, index: str) -> str | None:
        """One ``_aliases`` request removes the alias from its old index(es) and adds it to
        ``index``: OpenSearch applies the actions atomically, so readers never see no alias."""
        current = self._alias_targets(alias)
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": alias}} for old in current if old != index
        ]
        actions.append({"add": {"index": index, "alias": alias}})
        with _translate(f"point alias {alias!r} at {index!r}"):
            self.client.indices.update_aliases(body={"actions": actions})
        previous = [old for old in current if old != index]
        if index in current:
            return index
        return previous[0] if previous else None

    def remove_alias(self, alias: str) -> str | None:
        current = self._alias_targets(alias)
        if not current:
            return None
        actions = [{"remove": {"index": index, "alias": alias}} for index in current]
        with _translate(f"remove alias {alias!r}"):
            self.client.indices.update_aliases(body={"actions": actions})
        return current[0]

    def resolve_alias(self, alias: str) -> str | None:
        targets = self._alias_targets(alias)
        return targets[0] if targets else None

    def _alias_targets(self, alias: str) -> list[str]:
        try:
            found = self.client.indices.get_alias(name=alias)
        except NotFoundError:
            return []
        except OpenSearchException as exc:
            raise _error(f"resolve alias {alias!r}", exc) from exc
        return sorted(found)


# ---------------------------------------------------------------------------- helpers


def _normalise(vector: Sequence[float]) -> list[float]:
    values = [float(x) for x in vector]
    norm = math.sqrt(sum(x * x for x in values))
    if norm == 0.0:
        raise KnowledgeBaseError("cannot index or search a zero vector with cosine similarity")
    return [x / norm for x in values]


def _chunk(source: dict[str, Any]) -> Chunk:
    return Chunk(
        doc_id=source["doc_id"],
        position=int(source["position"]),
        text=source.get("text") or "",
        title=source.get("title") or "",
    )


def _dedupe(hits: Iterable[ChunkHit]) -> list[ChunkHit]:
    seen: set[str] = set()
    out: list[ChunkHit] = []
    for hit in hits:
        if hit.chunk.chunk_id not in seen:
            seen.add(hit.chunk.chunk_id)
            out.append(hit)
    return out


def _status(item: dict[str, Any]) -> int:
    return int(next(iter(item.values())).get("status", 0))


def _summarise_bulk_errors(index: str, errors: list[dict[str, Any]]) -> str:
    reasons: dict[str, int] = {}
    for item in errors:
        op, detail = next(iter(item.items()))
        error = detail.get("error") or {}
        if isinstance(error, dict):
            reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        else:
            reason = str(error)
        key = f"{op} {detail.get('status', '?')} {reason}"
        reasons[key] = reasons.get(key, 0) + 1
    top = "; ".join(f"{n}x {reason}" for reason, n in sorted(reasons.items(), key=lambda r: -r[1]))
    return f"bulk upsert into {index!r}: {len(errors)} item(s) failed: {top}"


def _error(what: str, exc: Exception) -> KnowledgeBaseError:
    if isinstance(exc, NotFoundError):
        return KnowledgeBaseError(f"{what}: not found ({_reason(exc)})")
    if isinstance(exc, OSConnectionError):
        return KnowledgeBaseError(f"{what}: cannot reach OpenSearch ({exc})")
    if isinstance(exc, TransportError):
        return KnowledgeBaseError(f"{what}: OpenSearch returned {exc.status_code} ({_reason(exc)})")
    return KnowledgeBaseError(f"{what}: {exc}")


def _reason(exc: TransportError) -> str:
    info = exc.info
    if isinstance(info, dict):
        error = info.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', '')}: {error.get('reason', '')}".strip(": ")
    return str(exc.error)


@contextmanager
def _translate(what: str) -> Iterator[None]:
    try:
        yield
    except OpenSearchException as exc:
        raise _error(what, exc) from exc
