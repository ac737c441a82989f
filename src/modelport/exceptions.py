"""The exception names of v1's ``azureml.exceptions``, mapped onto modelport's errors.

``from azureml.exceptions import WebserviceException`` becomes
``from modelport.exceptions import WebserviceException``, and the ``except`` clauses of
a v1 notebook catch what modelport raises:

    v1 name                       is modelport's       because v1 raised it for
    AzureMLException              ModelportError       every SDK failure
    WebserviceException           ModelportError       every model-management failure:
                                                       bad configurations, missing models
                                                       and services, failed deployments,
                                                       failed scoring
    UserErrorException            InvalidInputError    invalid or unsupported input
    AuthenticationException       UnauthorizedError    credentials refused
    ModelNotFoundException        NotFoundError        a model (or other entity) missing
    ModelPathNotFoundException    InvalidInputError    model files not found to register
    ComputeTargetException        ComputeTargetError   compute targets: one not found, a
                                                       cluster that cannot be attached

The names are the classes themselves (aliases), since ``except`` matches real classes
only.  The v1 names for training, experiments and the like name
failures modelport never raises; they are distinct subclasses of ``ModelportError``,
so code that imports, raises or catches them keeps working.
"""

from __future__ import annotations

from modelport.errors import (
    ComputeTargetError,
    InvalidInputError,
    ModelportError,
    NotFoundError,
    UnauthorizedError,
)

AzureMLException = ModelportError
WebserviceException = ModelportError
UserErrorException = InvalidInputError
AuthenticationException = UnauthorizedError
ModelNotFoundException = NotFoundError
ModelPathNotFoundException = InvalidInputError
ComputeTargetException = ComputeTargetError


class TrainingException(ModelportError):
    """v1: failures of training runs (not raised by modelport)."""


class ExperimentExecutionException(ModelportError):
    """v1: failures of submitted runs (not raised by modelport)."""


class ProjectSystemException(ModelportError):
    """v1: failures of project snapshots and scope (not raised by modelport)."""


class SnapshotException(ModelportError):
    """v1: failures of run snapshots (not raised by modelport)."""


class RunEnvironmentException(ModelportError):
    """v1: no run context to load (not raised by modelport)."""


class WorkspaceException(ModelportError):
    """v1: failures creating or getting an Azure workspace (not raised by modelport)."""


class WorkspacePrivateEndpointException(ModelportError):
    """v1: workspace private endpoint failures (not raised by modelport)."""


class RunConfigurationException(ModelportError):
    """v1: run configuration failures (not raised by modelport)."""


class DiscoveryUrlNotFoundException(ModelportError):
    """v1: a service discovery URL missing (not raised by modelport)."""


class ActivityFailedException(ModelportError):
    """v1: a run that failed while being waited on (not raised by modelport)."""


class ActivityCanceledException(ModelportError):
    """v1: a run canceled while being waited on (not raised by modelport)."""


class DatasetTimestampMissingError(ModelportError):
    """v1: a dataset timestamp column missing (not raised by modelport)."""


class ParallelRunException(ModelportError):
    """v1: ParallelRunStep retry control (not raised by modelport)."""


__all__ = [
    "ActivityCanceledException",
    "ActivityFailedException",
    "AuthenticationException",
    "AzureMLException",
    "ComputeTargetException",
    "DatasetTimestampMissingError",
    "DiscoveryUrlNotFoundException",
    "ExperimentExecutionException",
    "ModelNotFoundException",
    "ModelPathNotFoundException",
    "ParallelRunException",
    "ProjectSystemException",
    "RunConfigurationException",
    "RunEnvironmentException",
    "SnapshotException",
    "TrainingException",
    "UserErrorException",
    "WebserviceException",
    "WorkspaceException",
    "WorkspacePrivateEndpointException",
]
