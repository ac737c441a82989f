from __future__ import annotations

from pathlib import Path

import pytest

from modelport import Environment, InferenceConfig
from modelport.errors import ConfigError, InvalidInputError
from modelport.spec.environment import EnvironmentSpec, parse_requirements
from modelport.spec.inference import InferenceConfigSpec


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
