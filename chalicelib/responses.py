"""How API views answer: JSON with its status and headers, errors included. Kept apart from
``errors`` so the step image, which raises those errors too, needs no Chalice."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Response

from chalicelib.errors import ServiceError
from chalicelib.views import etag

log = logging.getLogger(__name__)

JSON = {"Content-Type": "application/json"}


def json_response(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(body, status_code=status, headers={**JSON, **headers})


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Errors answer ``{"error": {"code", "message"}}``: a client's mistake with its 4xx, and
    anything unexpected as a 500 that is logged and tells nothing of the internals."""

    @functools.wraps(view)
    def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ServiceError as exc:
            return json_response(exc.to_dict(), exc.status)
        except Exception:
            log.exception("unexpected error in %s", view.__name__)
            error = {"code": "internal", "message": "an internal error occurred; retry later"}
            return json_response({"error": error}, 500)

    return handler


def cacheable(body: Mapping[str, Any], if_none_match: str | None) -> Response:
    """The body with its ETag, or 304 when the poller already has this version."""
    tag = etag(body)
    if if_none_match == tag:
        return Response("", status_code=304, headers={"ETag": tag})
    return json_response(body, ETag=tag, **{"Cache-Control": "no-cache"})
