from __future__ import annotations

import hashlib

import pytest

from modelport.compute.plan import plan, replica_environment
from modelport.envs.builder import conda_to_pip, requirements
from modelport.errors import InvalidInputError
from modelport.router.table import Backend, RouteTable, build_table
from modelport.spec.environment import EnvironmentSpec


def _table(
    auth: bool = True, keys: tuple[str, ...] = ("primary-key-1", "secondary-key-2")
) -> RouteTable:
    doc = {
        "revision": 3,
        "services": {
            "svc": {
                "auth": auth,
                "keyDigests": [hashlib.sha256(k.encode()).hexdigest() for k in keys],
                "replicas": [["127.0.0.1", 1001], ["127.0.0.1", 1002]],
                "scoringTimeoutMs": 1500,
                "maxConcurrent": 4,
            }
        },
    }
    return build_table(doc, RouteTable())


def test_keys_are_checked_against_digests() -> None:
    route = _table().routes["svc"]
    assert route.authorised(b"Bearer primary-key-1")
    assert route.authorised(b"Bearer secondary-key-2")
    for header in (None, b"", b"Bearer", b"Bearer wrong", b"primary-key-1", b"Basic primary-key-1"):
        assert not route.authorised(header)
    assert _table(auth=False).routes["svc"].authorised(None)


def test_pick_prefers_the_least_busy_replica() -> None:
    route = _table().routes["svc"]
    a, b = route.backends
    a.in_flight = 2
    assert route.pick() is b
    b.in_flight = 3
    assert route.pick() is a
    assert route.pick(exclude=a) is b
    assert route.timeout_s == 1.5


def test_ties_take_turns() -> None:
    route = _table().routes["svc"]
    picks = [route.pick() for _ in range(4)]
    assert picks[0] is not picks[1] and picks[0] is picks[2] and picks[1] is picks[3]


def test_table_update_keeps_in_flight_counts_of_staying_replicas() -> None:
    first = _table()
    first.routes["svc"].backends[0].in_flight = 4
    doc = {
        "revision": 4,
        "services": {"svc": {"replicas": [["127.0.0.1", 1001], ["127.0.0.1", 1003]]}},
    }
    second = build_table(doc, first)
    kept, new = second.routes["svc"].backends
    assert kept.in_flight == 4 and isinstance(new, Backend) and new.in_flight == 0
    assert second.revision == 4


def _spec(dc: dict) -> dict:  # type: ignore[type-arg]
    return {"deploymentConfig": dc, "inferenceConfig": {"entryScript": "score.py"}, "models": []}


def test_plan_follows_the_deployment_config() -> None:
    fixed = plan(
        _spec(
            {
                "computeType": "aks",
                "numReplicas": 3,
                "autoScaler": {"autoscaleEnabled": False},
                "scoringTimeoutMs": 2000,
                "maxConcurrentRequestsPerContainer": 2,
            }
        )
    )
    assert (fixed.replicas, fixed.auth, fixed.scoring_timeout_ms, fixed.max_concurrent) == (
        3,
        True,
        2000,
        2,
    )
    scaled = plan(
        _spec({"computeType": "aks", "autoScaler": {"autoscaleEnabled": True, "minReplicas": 2}})
    )
    assert scaled.replicas == 2
    open_ = plan(_spec({"computeType": "aks", "authEnabled": False}))
    assert open_.auth is False and open_.replicas == 1
    local = plan(_spec({"computeType": "local", "port": 8890}))
    assert (local.replicas, local.auth, local.fixed_port, local.compute_type) == (
        1,
        False,
        8890,
        "Local",
    )
    env = replica_environment(fixed, "svc")
    assert env["SCORING_TIMEOUT_MS"] == "2500" and env["MODELPORT_WORKERS"] == "2"


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("numpy=1.26", "numpy==1.26.*"),
        ("numpy=1.26.4", "numpy==1.26.4"),
        ("numpy", "numpy"),
        ("conda-forge::pandas>=2", "pandas>=2"),
        ("scikit-learn==1.5.2", "scikit-learn==1.5.2"),
        ("python=3.11", None),
        ("pip", None),
    ],
)
def test_conda_dependencies_become_pip_requirements(conda: str, pip: str | None) -> None:
    assert conda_to_pip(conda) == pip


def test_conda_only_packages_are_named() -> None:
    with pytest.raises(
        InvalidInputError, match="conda package 'cudatoolkit' has no same-named package on PyPI"
    ):
        conda_to_pip("cudatoolkit=11.8")


def test_requirements_combine_conda_and_pip_sections() -> None:
    spec = EnvironmentSpec.from_document(
        {
            "name": "e",
            "python": {
                "condaDependencies": {
                    "dependencies": ["python=3.11", "numpy=2.1", {"pip": ["requests==2.32.3"]}]
                }
            },
        }
    )
    assert requirements(spec) == ["numpy==2.1.*", "requests==2.32.3"]
