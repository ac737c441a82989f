"""Which v1 settings are refused, and which are warned about on the local target."""

from __future__ import annotations

from modelport.spec.deployment import deployment_config_from_document
from modelport.spec.inference import InferenceConfigSpec
from modelport.spec.support import Target, refusals, warnings

LOCAL = Target("local")


def config(**doc: object):  # type: ignore[no-untyped-def]
    return deployment_config_from_document({"computeType": "aks", **doc})


def test_token_auth_is_taken_and_so_are_endpoints() -> None:
    assert refusals(config(tokenAuthEnabled=True, authEnabled=False)) == []
    assert refusals(config(tokenAuthEnabled=True)) == []  # key auth then defaults to off
    endpoint = deployment_config_from_document(
        {"computeType": "AKSENDPOINT", "versionName": "v-one", "trafficPercentile": 20}
    )
    assert refusals(endpoint) == []
    assert refusals(config(numReplicas=2, autoScaler={"autoscaleEnabled": False})) == []


def test_each_unenforced_setting_is_named() -> None:
    notes = warnings(
        config(
            dataCollection={"storageEnabled": True},
            appInsightsEnabled=True,
            gpuCores=1,
            namespace="team-a",
            containerResourceRequirements={"cpu": 0.5, "memoryInGBLimit": 1},
        ),
        None,
        Target("local", cgroups="cgroup v2 is not writable here"),
    )
    text = "\n".join(notes)
    for key in ("appInsightsEnabled", "gpuCores", "namespace"):
        assert key in text
    assert "collectModelData" not in text  # every target keeps model data
    assert "cpu_cores, memory_gb_limit: not enforced: cgroup v2 is not writable here" in text
    on_cluster = warnings(
        config(dataCollection={"storageEnabled": True}), None, Target("k", namespace="ml")
    )
    assert not any("collectModelData" in n for n in on_cluster)  # sent to the control plane


def test_resources_enforced_by_a_cgroup_draw_no_warning() -> None:
    assert warnings(config(containerResourceRequirements={"cpu": 0.5}), None, LOCAL) == []


def test_docker_and_conda_channel_settings_are_named() -> None:
    env = {
        "name": "v1-env",
        "docker": {"enabled": True, "baseImage": "mcr.microsoft.com/azureml/base:latest"},
        "python": {"condaDependencies": {"channels": ["conda-forge"], "dependencies": ["numpy"]}},
    }
    spec = InferenceConfigSpec.create({"entry_script": "score.py", "environment": env})
    text = "\n".join(warnings(config(), spec, LOCAL))
    assert "docker.baseImage" in text and "conda channels conda-forge" in text
    assert "this machine's Python" in text
    cluster = Target("myaks", namespace="ml", gpus=True)
    on_cluster = "\n".join(warnings(config(), spec, cluster))
    assert "built in each pod on modelport's runtime image" in on_cluster
    assert "this machine" not in on_cluster


def test_a_cluster_takes_gpus_and_its_own_namespace_without_warnings() -> None:
    cluster = Target("myaks", namespace="ml", gpus=True)
    assert warnings(config(gpuCores=1, namespace="ml"), None, cluster) == []
    (moved,) = warnings(config(namespace="other"), None, cluster)
    assert moved == (
        "namespace 'other': services go into the namespace 'ml' the myaks cluster was attached with"
    )
