"""How API views answer client errors; kept apart from the errors so the step image needs no
Chalice."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib.errors import ServiceError


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Client mistakes become ``{"error": {"code", "message"}}`` with their status."""

    @functools.wraps(view)
    def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ServiceError as exc:
            return Response(
                exc.to_dict(), status_code=exc.status, headers={"Content-Type": "application/json"}
            )

    return handler
