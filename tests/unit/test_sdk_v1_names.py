"""The SDK names a v1 notebook uses, without a server: conda, environments, models,
exceptions, ACI configurations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from modelport import (
    AciWebservice,
    CondaDependencies,
    Environment,
    Model,
    ResourceConfiguration,
)
from modelport.envs.recipe import recipe
from modelport.errors import (
    ClusterUnreachableError,
    ComputeTargetNotFoundError,
    ConfigError,
    InvalidInputError,
    ModelportError,
    NotFoundError,
    ScoringError,
    UnauthorizedError,
)
from modelport.exceptions import (
    AuthenticationException,
    ComputeTargetException,
    ModelNotFoundException,
    UserErrorException,
    WebserviceException,
)
from modelport.spec.deployment import (
    AciServiceDeploymentConfiguration,
    deployment_config_from_document,
)

OWN_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

# What v1's CondaDependencies().save() wrote (ruamel round trip, comments kept).
V1_WRITTEN = """\
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

name: project_environment
dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.5.2 and later.
- python=3.6.2

- pip:
    # Required packages for AzureML execution, history, and data preparation.
  - azureml-defaults~=1.44.0

  - inference-schema[numpy-support]==1.3.0
- scikit-learn
channels:
- anaconda
- conda-forge
"""


def test_create_serialize_and_read_back(tmp_path: Path) -> None:
    cd = CondaDependencies.create(
        pip_packages=["azureml-defaults", "inference-schema[numpy-support]==1.3.0"],
        conda_packages=["scikit-learn", "numpy=1.26"],
        python_version="3.11",
    )
    assert cd.get_python_version() == "3.11"
    assert list(cd.conda_packages) == ["python=3.11", "scikit-learn", "numpy=1.26"]
    text = cd.serialize_to_string()
    assert yaml.safe_load(text) == cd.as_dict()
    path = tmp_path / "myenv.yml"
    assert cd.save(str(path)) == str(path)
    again = CondaDependencies(conda_dependencies_file_path=str(path))
    assert again == cd
    env = Environment.from_conda_specification("from-cd", path)
    built = recipe(env)
    assert built.requirements == (
        "scikit-learn",
        "numpy==1.26.*",
        "inference-schema[numpy-support]",
    )
    assert len(built.dropped) == 2


def test_a_file_v1_wrote_loads_and_builds(tmp_path: Path) -> None:
    (tmp_path / "v1.yml").write_text(V1_WRITTEN)
    cd = CondaDependencies(conda_dependencies_file_path=tmp_path / "v1.yml")
    assert cd.get_python_version() == "3.6.2"
    assert list(cd.pip_packages) == [
        "azureml-defaults~=1.44.0",
        "inference-schema[numpy-support]==1.3.0",
    ]
    assert list(cd.conda_channels) == ["anaconda", "conda-forge"]
    env = Environment.from_conda_specification("v1", tmp_path / "v1.yml")
    assert env.python_entry == "python=3.6.2"
    assert recipe(env).requirements == ("scikit-learn", "inference-schema[numpy-support]")
    (tmp_path / "odd.yml").write_text("name: x\nfoo: 1\n")
    with pytest.raises(ConfigError, match="unknown foo key"):
        CondaDependencies(conda_dependencies_file_path=tmp_path / "odd.yml")


def test_default_and_editing_rules() -> None:
    cd = CondaDependencies()
    assert cd.get_python_version() == OWN_PYTHON
    assert list(cd.pip_packages) == ["azureml-defaults"]
    cd.add_pip_package("pillow==6.2.1")
    cd.add_pip_package("Pillow>=10")  # the same package: replaced, moved to the end
    cd.set_pip_option("--extra-index-url https://a")
    cd.set_pip_option("--extra-index-url https://b")
    assert list(cd.pip_packages) == ["azureml-defaults", "Pillow>=10"]
    assert list(cd.pip_options) == ["--extra-index-url https://b"]
    cd.remove_pip_package("azureml_defaults")
    cd.add_conda_package("python=3.10")
    cd.add_channel("pytorch")
    cd.add_channel("pytorch")
    cd.add_conda_package("pytorch")
    cd.remove_conda_package("pytorch")
    assert cd.get_python_version() == "3.10" and list(cd.conda_packages) == ["python=3.10"]
    assert list(cd.conda_channels) == ["anaconda", "conda-forge", "pytorch"]
    with pytest.raises(InvalidInputError, match="python must not be removed"):
        cd.remove_conda_package("python=3.10")
    with pytest.raises(InvalidInputError, match="Invalid package name"):
        cd.add_pip_package("--index-url https://x")
    assert CondaDependencies.merge_requirements(["a>1", "b", "a<3"]) == ["a>1,<3", "b"]


def test_save_refuses_a_folder_and_a_missing_python(tmp_path: Path) -> None:
    cd = CondaDependencies()
    with pytest.raises(InvalidInputError, match="to a directory"):
        cd.save(tmp_path)
    cd["dependencies"] = [{"pip": ["numpy"]}]
    with pytest.raises(InvalidInputError, match="Python package is missing"):
        cd.save(tmp_path / "env.yml")
    cd.set_python_version("3.11")
    assert cd.save_to_file(tmp_path, "conda.yml") == "conda.yml"  # deprecated v1 name
    assert CondaDependencies(tmp_path / "conda.yml").get_python_version() == "3.11"


def test_environment_is_built_up_by_assignment_as_in_v1() -> None:
    env = Environment("sklearn-env")  # positional, with v1's default conda dependencies
    assert isinstance(env.python.conda_dependencies, CondaDependencies)
    env.python.conda_dependencies.add_pip_package("scikit-learn")
    cd = CondaDependencies.create(pip_packages=["numpy"], python_version="3.11")
    env.python.conda_dependencies = cd
    assert env.python.conda_dependencies is cd  # kept, so later edits count
    before = env.content_hash()
    cd.add_pip_package("pandas")
    assert env.content_hash() != before
    assert env.model_dump(by_alias=True)["python"]["condaDependencies"]["dependencies"][1] == {
        "pip": ["numpy", "pandas"]
    }
    env.environment_variables["WORKERS"] = 2
    env.environment_variables["DEBUG"] = True
    assert env.environment_variables == {"WORKERS": "2", "DEBUG": "true"}
    env.environment_variables = {"MODE": "fast"}
    env.environment_variables["LEVEL"] = 3
    assert env.to_document()["environmentVariables"] == {"MODE": "fast", "LEVEL": "3"}
    with pytest.raises(InvalidInputError, match="WORKERS: the value must be text or a number"):
        env.environment_variables["WORKERS"] = [1]
    env.docker.enabled = True
    env.docker.base_image = "mcr.microsoft.com/azureml/base:latest"
    env.inferencing_stack_version = "latest"
    env.python.user_managed_dependencies = True
    with pytest.raises(ConfigError, match="DockerSection base_image"):
        env.docker.base_image = 5  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="mutually exclusive"):
        env.docker.base_dockerfile = "FROM python:3.11"
    again = Environment.model_validate(env.to_document())
    assert again.to_document() == env.to_document()
    assert isinstance(again.python.conda_dependencies, CondaDependencies)


def test_model_framework_and_resource_configuration() -> None:
    assert Model.Framework.SCIKITLEARN == "ScikitLearn" and Model.Framework.ONNX == "Onnx"
    assert {
        Model.Framework.CUSTOM,
        Model.Framework.TENSORFLOW,
        Model.Framework.TFKERAS,
        Model.Framework.PYTORCH,
        Model.Framework.MULTI,
    } == {"Custom", "TensorFlow", "TfKeras", "PyTorch", "Multi"}
    rc = ResourceConfiguration(cpu=0.5, memory_in_gb=1, gpu=0)
    assert rc.serialize() == {"cpu": 0.5, "memoryInGB": 1, "gpu": 0}
    assert ResourceConfiguration.deserialize(rc.serialize()) == rc
    with pytest.raises(InvalidInputError, match="cpu must be a positive number"):
        ResourceConfiguration(cpu=0)
    with pytest.raises(InvalidInputError, match="gpu must be a whole number"):
        ResourceConfiguration(gpu=1.5)  # type: ignore[arg-type]


def test_v1_exception_names_catch_what_modelport_raises() -> None:
    for raised, caught_by in (
        (NotFoundError("Model with name x not found"), ModelNotFoundException),
        (NotFoundError("WebserviceNotFound"), WebserviceException),
        (ScoringError("Received bad response", 502), WebserviceException),
        (ConfigError("Invalid configuration, cpu_cores must be positive."), UserErrorException),
        (UnauthorizedError("bad token"), AuthenticationException),
        (ComputeTargetNotFoundError("ComputeTargetNotFound: x"), ComputeTargetException),
        (ComputeTargetNotFoundError("ComputeTargetNotFound: x"), NotFoundError),
        (ClusterUnreachableError("cannot reach the API server"), ComputeTargetException),
    ):
        with pytest.raises(caught_by):
            raise raised
    with pytest.raises(ModelportError):
        raise ComputeTargetException("a v1 notebook may raise it too")
    assert not issubclass(InvalidInputError, ComputeTargetException)


def test_aci_configuration_validates_as_v1() -> None:
    config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=2, auth_enabled=True)
    assert config.resolved().auth_enabled is True
    assert AciWebservice.deploy_configuration().resolved().auth_enabled is False  # ACI default
    for kwargs, message in (
        ({"cpu_cores": 0}, "cpu_cores must be positive"),
        ({"memory_gb": -1}, "memory_gb must be positive"),
        (
            {"ssl_enabled": True, "ssl_cname": "x"},
            "SSL is enabled, you must provide a SSL certificate, key",
        ),
        ({"cmk_key_name": "k"}, "customer managed key vault_base_url"),
        ({"vnet_name": "v"}, "vnet_name and subnet_name must all have values"),
    ):
        with pytest.raises(ConfigError, match=f"Invalid configuration, {message}"):
            AciWebservice.deploy_configuration(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unable to find SSL cert pem file"):
        AciWebservice.deploy_configuration(
            ssl_enabled=True,
            ssl_cert_pem_file="/no/cert.pem",
            ssl_key_pem_file="/no/key.pem",
            ssl_cname="x",
        )


def test_aci_deploymentconfig_json() -> None:
    doc = {
        "computeType": "ACI",
        "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0},
        "authEnabled": True,
        "location": "westeurope",
        "dnsNameLabel": "my-svc",
        "keys": {"primaryKey": "primary-key-1"},
    }
    config = deployment_config_from_document(doc)
    assert isinstance(config, AciServiceDeploymentConfiguration)
    assert (config.cpu_cores, config.memory_gb, config.location) == (0.5, 1.0, "westeurope")
    assert config.primary_key == "primary-key-1"
    assert {k: v for k, v in config.to_document().items() if k != "computeType"} == {
        k: v for k, v in doc.items() if k != "computeType"
    }
    with pytest.raises(ConfigError, match="unknown key 'numReplicas'"):
        deployment_config_from_document({"computeType": "aci", "numReplicas": 2})
