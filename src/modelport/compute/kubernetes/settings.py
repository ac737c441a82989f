"""How modelport uses one cluster: namespace, image, the control plane's address.

The runtime image runs both the staging step and the replicas. It must hold a
Python (3.11 or newer) with modelport installed (its ``python`` first on ``PATH``),
and reach PyPI when an environment is built in the pod; environments are built
with uv into a node-local cache folder (``env_cache_path``) keyed by the image and
the environment's hash, so each node builds one environment once.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelport import __version__

DEFAULT_IMAGE = f"modelport/runtime:{__version__}"
DEFAULT_ENV_CACHE = "/var/cache/modelport/envs"
POLICY_V1 = "policy/v1"
POLICY_V1BETA1 = "policy/v1beta1"  # Kubernetes before 1.21


@dataclass(frozen=True)
class ClusterSettings:
    namespace: str
    workspace: str  # the workspace key (modelport.home.workspace_key)
    stage_url: str  # the management API as the cluster's pods reach it
    image: str = DEFAULT_IMAGE
    env_cache_path: str = DEFAULT_ENV_CACHE  # on each node (a hostPath)
    pdb_api_version: str = POLICY_V1
    router_replicas: int = 1
    run_as_user: int | None = None  # None: the image's user
    stage_ca: str | None = None  # PEM of the CA the staging step trusts for stage_url
