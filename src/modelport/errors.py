"""The one error hierarchy of modelport, shared by server, SDK and CLI.

    ModelportError                     500  exit 1   internal_error
    ├── InvalidInputError              400  exit 2   invalid_input
    │   └── ConfigError                400  exit 2   invalid_configuration
    ├── UnauthorizedError              401  exit 4   unauthorized
    ├── ForbiddenError                 403  exit 4   forbidden
    ├── NotFoundError                  404  exit 3   not_found
    │   └── ComputeTargetNotFoundError 404  exit 3   compute_target_not_found
    ├── ConflictError                  409  exit 5   conflict
    ├── PayloadTooLargeError           413  exit 2   payload_too_large
    ├── ServerUnavailableError         503  exit 6   server_unavailable
    │   └── StorageUnavailableError    503  exit 6   storage_unavailable
    │       └── InsufficientStorageError 507 exit 6  insufficient_storage
    ├── EnvironmentBuildError          400  exit 7   environment_build_failed
    ├── ReplicasFailedError            500  exit 8   replicas_failed
    ├── UnschedulableError             409  exit 8   unschedulable
    ├── ScoringError                   502  exit 9   scoring_failed
    ├── TlsError                       502  exit 11  tls_failed
    └── ComputeTargetError             400  exit 10  compute_target_failed
        └── ClusterUnreachableError    502  exit 10  cluster_unreachable
        └── WatchExpiredError          502  exit 10  watch_expired

ComputeTargetNotFoundError is a ComputeTargetError too (v1 raised ComputeTargetException).

Each class carries a stable ``code`` (the wire name), the HTTP status the management
API answers with, and the exit code the CLI ends with.  The API turns every error
into ``{"error": {"code": ..., "message": ...}}``; the SDK turns that body back into
the same class with :func:`from_body`, so callers catch one hierarchy on both sides.
Third-party errors are mapped at the boundary with ``raise ... from``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ModelportError(Exception):
    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            error["hint"] = self.hint
        return {"error": error}


class InvalidInputError(ModelportError):
    code = "invalid_input"
    http_status = 400
    exit_code = 2


class ConfigError(InvalidInputError):
    """A configuration file or SDK configuration that breaks a v1 rule."""

    code = "invalid_configuration"


class UnauthorizedError(ModelportError):
    code = "unauthorized"
    http_status = 401
    exit_code = 4


class ForbiddenError(ModelportError):
    """A valid credential that may not do this (a scoring client outside its services)."""

    code = "forbidden"
    http_status = 403
    exit_code = 4


class NotFoundError(ModelportError):
    code = "not_found"
    http_status = 404
    exit_code = 3


class ConflictError(ModelportError):
    code = "conflict"
    http_status = 409
    exit_code = 5


class PayloadTooLargeError(ModelportError):
    code = "payload_too_large"
    http_status = 413
    exit_code = 2


class ServerUnavailableError(ModelportError):
    code = "server_unavailable"
    http_status = 503
    exit_code = 6


class StorageUnavailableError(ServerUnavailableError):
    """The workspace database or artifact store failed (read-only, gone, I/O error).

    The message names what failed and the operating system's or database's own
    words; the server recovers by itself once the cause is gone.
    """

    code = "storage_unavailable"


class InsufficientStorageError(StorageUnavailableError):
    """No space left for the workspace database or the artifact store."""

    code = "insufficient_storage"
    http_status = 507


class EnvironmentBuildError(ModelportError):
    """uv could not build a service's environment; the message carries its output."""

    code = "environment_build_failed"
    http_status = 400
    exit_code = 7


class ReplicasFailedError(ModelportError):
    """A deployment's replicas could not be started (e.g. init() fails every time)."""

    code = "replicas_failed"
    http_status = 500
    exit_code = 8


class ScoringError(ModelportError):
    """A scoring call that did not succeed; ``status_code`` and ``content`` say why."""

    code = "scoring_failed"
    http_status = 502
    exit_code = 9

    def __init__(
        self, message: str, status_code: int = 0, content: str = "", *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.content = content


class TlsError(ModelportError):
    """A TLS connection refused on the client's side: the server's certificate is not
    trusted (unknown CA, another host name, expired) or no common protocol; the
    message names the host and the reason."""

    code = "tls_failed"
    http_status = 502
    exit_code = 11


class ComputeTargetError(ModelportError):
    """A cluster that cannot be attached or used: its kubeconfig, its answers, or what
    its credentials may not do (the message says which)."""

    code = "compute_target_failed"
    http_status = 400
    exit_code = 10


class ClusterUnreachableError(ComputeTargetError):
    """A cluster's API server did not answer; the message names the server."""

    code = "cluster_unreachable"
    http_status = 502


class UnschedulableError(ModelportError):
    """No room for the replicas: not enough free GPUs (the message gives the counts)."""

    code = "unschedulable"
    http_status = 409
    exit_code = 8


class WatchExpiredError(ComputeTargetError):
    """A watch's resourceVersion is too old (410 Gone): list again, then watch."""

    code = "watch_expired"
    http_status = 502


class ComputeTargetNotFoundError(NotFoundError, ComputeTargetError):
    """No compute target of that name (v1 raised ComputeTargetException for it)."""

    code = "compute_target_not_found"
    http_status = 404
    exit_code = 3


_BY_CODE: dict[str, type[ModelportError]] = {
    cls.code: cls
    for cls in (
        ModelportError,
        InvalidInputError,
        ConfigError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        ServerUnavailableError,
        StorageUnavailableError,
        InsufficientStorageError,
        EnvironmentBuildError,
        ReplicasFailedError,
        ScoringError,
        TlsError,
        ComputeTargetError,
        ClusterUnreachableError,
        ComputeTargetNotFoundError,
    )
}

_BY_STATUS: dict[int, type[ModelportError]] = {
    400: InvalidInputError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    503: ServerUnavailableError,
    507: InsufficientStorageError,
}


def from_body(status: int, body: Any) -> ModelportError:
    """Rebuild the error a server answered with (status + canonical JSON body)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        cls = _BY_CODE.get(str(error.get("code")), _BY_STATUS.get(status, ModelportError))
        hint = error.get("hint")
        return cls(error["message"], hint=hint if isinstance(hint, str) else None)
    cls = _BY_STATUS.get(status, ModelportError)
    return cls(f"the server answered {status} without an error body")
