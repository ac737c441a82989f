"""A v1 notebook's legacy deployment and LocalWebservice.reload(), on a real server."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport import InferenceConfig, LocalWebservice, Model, ResourceConfiguration, Workspace
from tests.conftest import ServerProcess

SCORE = """
    import six
    from modelport import Model

    def init():
        global path
        path = Model.get_model_path("legacy-model")

    def run(raw):
        return {{"version": "{version}", "six": six.__version__}}
"""
CONDA = f"""\
name: project_environment
dependencies:
- python={sys.version_info.major}.{sys.version_info.minor}
- pip:
  - azureml-defaults==1.44.0
  - six==1.16.0
channels:
- conda-forge
"""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    # A machine cache of its own, so the environment is built here (uv's cache keeps
    # that quick) and the build's lines are seen.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = ServerProcess(tmp_path / "home")
    try:
        with Workspace.from_config(server.home) as workspace:
            yield workspace
    finally:
        server.stop()


def test_legacy_conda_file_deploys_then_reload_recopies_the_code(
    ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "model.txt").write_text("weights")
    model = Model.register(
        ws,
        tmp_path / "model.txt",
        "legacy-model",
        model_framework=Model.Framework.CUSTOM,
        resource_configuration=ResourceConfiguration(cpu=0.5, memory_in_gb=1),
    )
    assert Model(ws, "legacy-model").resource_configuration == model.resource_configuration
    assert model.resource_configuration == ResourceConfiguration(cpu=0.5, memory_in_gb=1)
    src = tmp_path / "src"
    src.mkdir()
    (src / "score.py").write_text(textwrap.dedent(SCORE.format(version="1")))
    (src / "myenv.yml").write_text(CONDA)
    config = InferenceConfig(
        entry_script="score.py", runtime="python", conda_file="myenv.yml", source_directory=src
    )
    service = Model.deploy(
        ws, "legacy-svc", [model], config, LocalWebservice.deploy_configuration()
    )
    assert isinstance(service, LocalWebservice)
    service.wait_for_deployment()
    assert service.state == "Healthy", service.error
    data = service.serialize()
    assert data["environment"]["name"] == "legacy-svc-env"
    assert "runtime" not in data["inferenceConfig"]
    assert "condaFile" not in data["inferenceConfig"]
    messages = "\n".join(data["deploymentStatus"]["messages"])
    assert "v1 package azureml-defaults==1.44.0 (pip) left out" in messages
    assert service.run({}) == {"version": "1", "six": "1.16.0"}

    (src / "score.py").write_text(textwrap.dedent(SCORE.format(version="2")))
    (src / "myenv.yml").write_text(CONDA.replace("six==1.16.0", "six==1.15.0"))
    service.reload(wait=True)
    assert service.state == "Healthy", service.error
    assert service.run({}) == {"version": "2", "six": "1.16.0"}  # new code, same environment
    after = service.serialize()
    assert after["environment"]["contentHash"] == data["environment"]["contentHash"]
    assert after["generation"] == data["generation"] + 1

    service.update(inference_config=config)  # the edited conda file counts now
    service.wait_for_deployment()
    assert service.run({}) == {"version": "2", "six": "1.15.0"}
    assert service.serialize()["environment"]["name"] == "legacy-svc-env"
