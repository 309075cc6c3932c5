"""Who is calling: the authorizer in front of the API, and the owner it names."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from chalice import CognitoUserPoolAuthorizer, IAMAuthorizer

LOCAL_OWNER = "local"


def authorizer() -> IAMAuthorizer | CognitoUserPoolAuthorizer | None:
    """Chosen at deploy time by AUTH_MODE (iam, cognito); none for the local service."""
    mode = os.environ.get("AUTH_MODE", "none")
    if mode == "iam":
        return IAMAuthorizer()
    if mode == "cognito":
        return CognitoUserPoolAuthorizer(
            "MinionUsers", provider_arns=[os.environ["COGNITO_USER_POOL_ARN"]]
        )
    return None


def owner_of(context: Mapping[str, Any] | None) -> str:
    """A stable id for the caller: the Cognito subject or the IAM principal, hashed."""
    context = context or {}
    claims = (context.get("authorizer") or {}).get("claims") or {}
    if claims.get("sub"):
        principal = f"cognito:{claims['sub']}"
    elif (context.get("identity") or {}).get("userArn"):
        principal = f"iam:{_stable_principal(context['identity']['userArn'])}"
    else:
        return LOCAL_OWNER
    return hashlib.sha256(principal.encode()).hexdigest()[:32]


def _stable_principal(arn: str) -> str:
    """An assumed role's ARN names the session too; the owner is the role, not the session."""
    if ":assumed-role/" in arn:
        return arn.rsplit("/", 1)[0]
    return arn
