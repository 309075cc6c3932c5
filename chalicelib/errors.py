"""Errors a client can cause, each with the HTTP status and code the API answers with."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}

    @staticmethod
    def from_dict(error: dict[str, str]) -> ServiceError:
        """The error another function reported with ``to_dict``, as the same kind."""
        kinds = {kind.code: kind for kind in ServiceError.__subclasses__()}
        return kinds.get(error.get("code", ""), Unavailable)(error.get("message", "failed"))


class BadRequest(ServiceError):
    """The request itself is malformed (the default status and code)."""


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class Unavailable(ServiceError):
    """A dependency (Step Functions, the knowledge base) failed; the client may retry."""

    status = 503
    code = "unavailable"
