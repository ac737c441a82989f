"""One service generation as a cluster runs it: what the manifests are built from.

:class:`Release` carries the decisions the control plane made for a generation:
its plan (``modelport.compute.plan.DeploymentPlan`` fits :class:`PlanLike`), the
replica variables the local target sets too (``plan.replica_environment``), the
entry script, the source folder's name, the models and the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from modelport.compute.local.limits import Resources
from modelport.compute.local.probing import ProbeSettings
from modelport.spec.environment import EnvironmentSpec


class PlanLike(Protocol):
    """What the manifests read of a deployment plan."""

    @property
    def replicas(self) -> int: ...
    @property
    def auth(self) -> bool: ...
    @property
    def token_auth(self) -> bool: ...
    @property
    def scoring_timeout_ms(self) -> int: ...
    @property
    def max_concurrent(self) -> int: ...
    @property
    def collect_model_data(self) -> bool: ...
    @property
    def max_wait_ms(self) -> int: ...
    @property
    def max_queue(self) -> int: ...
    @property
    def pipelining(self) -> bool: ...
    @property
    def slots(self) -> int: ...
    @property
    def batching(self) -> bool: ...
    @property
    def probe(self) -> ProbeSettings: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def gpu_cores(self) -> int: ...


@dataclass(frozen=True)
class Release:
    service: str
    generation: int
    plan: PlanLike
    entry_script: str  # relative to the source folder, as the inference config says
    source_basename: str  # the source folder's name ("" when files lie at the root)
    models: tuple[tuple[str, int], ...]  # (name, version)
    variables: Mapping[str, str]  # plan.replica_environment(plan, service)
    environment: EnvironmentSpec | None = None  # None: the image's own Python

    @property
    def entry_path(self) -> str:
        """AZUREML_ENTRY_SCRIPT: the entry script relative to the app root."""
        if self.source_basename:
            return f"{self.source_basename}/{self.entry_script}"
        return self.entry_script
