"""The one exception hierarchy of airflow-bridge.

Every error a user can cause derives from :class:`BridgeError`, so callers (CLI, operators,
tests) can catch one type and still tell kinds apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_bridge.issues import SpecIssue


class BridgeError(Exception):
    """Base class of every airflow-bridge error."""


class SpecError(BridgeError):
    """A spec (or policy) file is invalid; carries every issue found in it."""

    def __init__(self, issues: Sequence[SpecIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(issue.format() for issue in self.issues))


class DataError(BridgeError):
    """Training or evaluation data cannot be read or fails its checks."""


class EstimatorError(BridgeError):
    """An estimator cannot be built from the spec (not allowed, bad parameters)."""


class GateFailedError(BridgeError):
    """A validation gate failed: the model must not move forward."""


class RegistryError(BridgeError):
    """The model registry refused or could not perform an operation."""


class RegistryUnavailableError(RegistryError):
    """The registry database cannot be reached; the operation is safe to retry."""


class ConflictError(RegistryError):
    """A compare-and-set or uniqueness check lost against a concurrent writer."""


class NotFoundError(RegistryError):
    """A model, version or alias does not exist."""


class ChecksumMismatchError(RegistryError):
    """An artifact's bytes no longer match the checksum recorded at registration."""


class AuditMismatchError(RegistryError):
    """A registry row (version, alias, approval, model, policy) is not what its hash-chained audit event
    says: it was written or edited outside airflow-bridge. Nothing is honoured on its strength."""


class StorageError(BridgeError):
    """Object storage refused or cannot serve a request: unknown connection, refused credentials, missing
    bucket, or an object under a content-addressed name that holds other bytes. The message names the URI
    and the connection id."""


class RequestError(BridgeError):
    """A request that cannot be taken as given (a comment too long, a malformed value); nothing was changed."""


class DeploymentError(BridgeError):
    """A deployment target refused or failed a deployment."""


class PolicyViolationError(BridgeError):
    """A team policy forbids the requested action (approver rights, quotas, tiers)."""


class OwnershipError(PolicyViolationError):
    """A model belongs to another team (or another policy): this spec or operator may not write to it."""


def is_user_error(exc: BaseException) -> bool:
    """Whether retrying cannot fix ``exc``: every airflow-bridge error but an unreachable registry.

    Operators fail such errors without retry and the training pod exits with its user-error code; anything
    else (infrastructure) is retried.
    """
    return isinstance(exc, BridgeError) and not isinstance(exc, RegistryUnavailableError)
