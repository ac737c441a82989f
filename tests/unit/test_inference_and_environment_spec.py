from __future__ import annotations

from pathlib import Path

import pytest

from modelport import Environment, InferenceConfig
from modelport.errors import ConfigError, InvalidInputError
from modelport.spec.environment import EnvironmentSpec, parse_requirements
from modelport.spec.inference import (
    DEFAULT_CPU_IMAGE,
    InferenceConfigSpec,
    convert_legacy,
    legacy_environment,
)


def test_inference_config_from_v1_file() -> None:
    doc = {
        "entryScript": "score.py",
        "sourceDirectory": "src",
        "environment": {
            "name": "my-env",
            "environmentVariables": {"A": "1"},
            "python": {"condaDependencies": {"dependencies": ["python=3.11", {"pip": ["numpy"]}]}},
        },
    }
    spec = InferenceConfigSpec.from_document(doc)
    assert spec.entry_script == "score.py" and spec.environment is not None
    assert spec.environment.python_version == "3.11"
    assert spec.environment.pip_packages() == ["numpy"]


def test_extra_docker_steps_both_spellings() -> None:
    for key in ("extraDockerfileSteps", "extraDockerFileSteps"):
        spec = InferenceConfigSpec.from_document({"entryScript": "s.py", key: "steps.txt"})
        assert spec.extra_docker_file_steps == "steps.txt"


def test_environment_with_legacy_fields_is_refused() -> None:
    doc = {"entryScript": "s.py", "condaFile": "env.yml", "environment": {"name": "e"}}
    with pytest.raises(ConfigError, match="along with an environment object"):
        InferenceConfigSpec.from_document(doc)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("score.sh", "Currently only Python drivers are supported"),
        ("my-score.py", "importable Python module name"),
        ("class.py", "importable Python module name"),
    ],
)
def test_entry_script_name_rules(script: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InferenceConfigSpec.from_document({"entryScript": script})


def test_unknown_inference_key_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'entryscript'.*did you mean 'entryScript'"):
        InferenceConfigSpec.from_document({"entryscript": "s.py"})


def test_sdk_inference_config_checks_the_script_on_disk(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    config = InferenceConfig(entry_script="score.py", source_directory=tmp_path)
    assert config.entry_script == "score.py"
    with pytest.raises(ConfigError, match=r"'missing\.py' was not found"):
        InferenceConfig(entry_script="missing.py", source_directory=tmp_path)
    (tmp_path / "broken.py").write_text("def init():\n    pass\n\ndef run(data)\n    return 1\n")
    with pytest.raises(ConfigError, match="syntax error at line 4"):
        InferenceConfig(entry_script="broken.py", source_directory=tmp_path)


def test_inference_config_file_paths_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    (tmp_path / "inferenceconfig.yml").write_text("entryScript: score.py\nsourceDirectory: code\n")
    config = InferenceConfig.from_file(tmp_path / "inferenceconfig.yml")
    assert Path(config.source_directory or "") == tmp_path / "code"


def test_pip_requirements_parsing() -> None:
    text = "# comment\nnumpy==2.1.0\n\nscikit-learn>=1.5  # inline\n--extra-index-url https://x\n"
    assert parse_requirements(text) == [
        "numpy==2.1.0",
        "scikit-learn>=1.5",
        "--extra-index-url https://x",
    ]
    with pytest.raises(ConfigError, match="line 2"):
        parse_requirements("numpy\n-r other.txt\n")


def test_content_hash_ignores_name_and_follows_content(tmp_path: Path) -> None:
    (tmp_path / "req.txt").write_text("numpy==2.1.0\n")
    a = Environment.from_pip_requirements("env-a", tmp_path / "req.txt")
    b = Environment.from_pip_requirements("env-b", tmp_path / "req.txt")
    assert a.content_hash() == b.content_hash()
    c = b.model_copy(update={"environment_variables": {"X": "1"}})
    assert c.content_hash() != b.content_hash()
    (tmp_path / "req.txt").write_text("numpy==2.2.0\n")
    d = Environment.from_pip_requirements("env-a", tmp_path / "req.txt")
    assert d.content_hash() != a.content_hash()


def test_conda_specification(tmp_path: Path) -> None:
    (tmp_path / "env.yml").write_text(
        "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.10\n  - pip\n"
        "  - pip:\n    - requests==2.32.3\n"
    )
    env = Environment.from_conda_specification("conda-env", tmp_path / "env.yml")
    assert env.python_version == "3.10" and env.pip_packages() == ["requests==2.32.3"]
    (tmp_path / "bad.yml").write_text("dependencies:\n  - pip:\n    - [1, 2]\n")
    with pytest.raises(ConfigError, match="must be a package string"):
        Environment.from_conda_specification("conda-env", tmp_path / "bad.yml")


def test_environment_names_and_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="reserved"):
        EnvironmentSpec.from_document({"name": "AzureML-Minimal"})
    with pytest.raises(ConfigError, match="unknown key 'environmentVariable'"):
        EnvironmentSpec.from_document({"name": "ok", "environmentVariable": {}})
    with pytest.raises(ConfigError, match="did you mean 'baseImage'"):
        EnvironmentSpec.from_document({"name": "ok", "docker": {"baseimage": "x"}})


def test_missing_requirements_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        Environment.from_pip_requirements("e", tmp_path / "nope.txt")


V1_CONDA = """\
# Conda environment specification, as a v1 notebook wrote it.
name: project_environment
dependencies:
  # The python interpreter version.
- python=3.11
- scikit-learn
- pip:
  - azureml-defaults==1.44.0
channels:
- anaconda
- conda-forge
"""


def test_legacy_config_becomes_the_service_env() -> None:
    config = InferenceConfigSpec.from_document(
        {"entryScript": "score.py", "runtime": "python", "condaFile": "myenv.yml"}
    )
    assert config.is_legacy
    env = legacy_environment(config, V1_CONDA, "my-service")
    assert env is not None and env.name == "my-service-env"
    assert env.python_version == "3.11"
    assert env.pip_packages() == ["azureml-defaults==1.44.0"]
    converted = convert_legacy(config, "my-service", V1_CONDA)
    doc = converted.to_document()
    assert "runtime" not in doc and "condaFile" not in doc
    assert doc["environment"]["name"] == "my-service-env"
    assert doc["entryScript"] == "score.py"


def test_legacy_docker_settings_go_where_v1_puts_them() -> None:
    config = InferenceConfigSpec.from_document(
        {
            "entryScript": "score.py",
            "runtime": "python",
            "baseImage": "myregistry.azurecr.io/base:1",
            "baseImageRegistry": {"address": "myregistry.azurecr.io", "username": "u"},
            "enableGpu": True,
        }
    )
    env = legacy_environment(config, None, "svc")
    assert env is not None and env.python.conda_dependencies is None
    assert env.docker.base_image == "myregistry.azurecr.io/base:1"
    assert env.docker.base_image_registry.address == "myregistry.azurecr.io"
    assert env.docker.gpu_support is True and env.inferencing_stack_version == "latest"
    steps = InferenceConfigSpec.from_document(
        {"entryScript": "score.py", "runtime": "python", "extraDockerfileSteps": "steps"}
    )
    dockerfile = legacy_environment(steps, None, "svc", docker_steps="RUN apt-get update\n")
    assert dockerfile is not None and dockerfile.docker.base_image is None
    assert dockerfile.docker.base_dockerfile == f"FROM {DEFAULT_CPU_IMAGE}\nRUN apt-get update\n"
    cuda9 = InferenceConfigSpec.from_document(
        {"entryScript": "score.py", "runtime": "python", "cudaVersion": "9.0"}
    )
    gpu = legacy_environment(cuda9, None, "svc")
    assert gpu is not None and gpu.docker.gpu_support and "cuda9.0" in str(gpu.docker.base_image)


def test_runtime_alone_keeps_the_servers_interpreter_and_spark_is_refused() -> None:
    plain = InferenceConfigSpec.from_document({"entryScript": "score.py", "runtime": "python"})
    assert legacy_environment(plain, None, "svc") is None
    assert "runtime" not in convert_legacy(plain, "svc").to_document()
    with pytest.raises(ConfigError, match="runtime 'spark-py' is not supported"):
        InferenceConfigSpec.from_document({"entryScript": "score.py", "runtime": "spark-py"})


def test_legacy_conda_file_that_does_not_parse_is_named() -> None:
    config = InferenceConfigSpec.from_document({"entryScript": "s.py", "condaFile": "env.yml"})
    with pytest.raises(ConfigError, match=r"env\.yml: not valid YAML at line 3"):
        legacy_environment(config, "dependencies:\n  - [unclosed\n", "svc")
    with pytest.raises(ConfigError, match="must be a package string"):
        legacy_environment(config, "dependencies:\n  - {a: 1}\n", "svc")


def _legacy_project(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (src / "myenv.yml").write_text(V1_CONDA)
    return src


def test_sdk_legacy_inference_config_checks_and_converts_its_conda_file(tmp_path: Path) -> None:
    src = _legacy_project(tmp_path)
    config = InferenceConfig(
        entry_script="score.py", runtime="python", conda_file="myenv.yml", source_directory=src
    )
    converted = config.for_service("my-service")
    assert converted.environment is not None
    assert converted.environment.name == "my-service-env"
    assert converted.environment.pip_packages() == ["azureml-defaults==1.44.0"]
    assert converted.spec.runtime is None and converted.spec.conda_file is None
    assert converted.source_directory == str(src)
    with pytest.raises(ConfigError, match=r"conda_file 'other\.yml' was not found in source_"):
        InferenceConfig(entry_script="score.py", conda_file="other.yml", source_directory=src)
    (src / "bad.yml").write_text("name: x\ndependencies: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yml: not valid YAML"):
        InferenceConfig(entry_script="score.py", conda_file="bad.yml", source_directory=src)


def test_inferenceconfig_json_conda_file_is_relative_to_its_source_directory(
    tmp_path: Path,
) -> None:
    _legacy_project(tmp_path)
    (tmp_path / "inferenceconfig.json").write_text(
        '{"entryScript": "score.py", "sourceDirectory": "src", "runtime": "python",'
        ' "condaFile": "myenv.yml"}'
    )
    config = InferenceConfig.from_file(tmp_path / "inferenceconfig.json")
    env = config.for_service("svc").environment
    assert env is not None and env.name == "svc-env" and env.python_version == "3.11"
