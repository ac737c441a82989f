"""What an environment installs: v1 serving packages left out, pins read, problems found."""

from __future__ import annotations

from typing import Any

import pytest

from modelport.envs import builder, pythons
from modelport.envs.pythons import Interpreter
from modelport.envs.recipe import recipe
from modelport.errors import InvalidInputError
from modelport.spec.environment import EnvironmentSpec


def _env(*deps: Any, channels: list[str] | None = None) -> EnvironmentSpec:
    conda: dict[str, Any] = {"dependencies": list(deps)}
    if channels:
        conda["channels"] = channels
    return EnvironmentSpec.from_document({"name": "e", "python": {"condaDependencies": conda}})


@pytest.mark.parametrize(
    "entry",
    [
        "azureml-defaults==1.44.0",
        "AzureML_Defaults>=1.0.45",
        "azureml.defaults~=1.44.0",
        "azureml-defaults[xyz]",
        "azureml-defaults ; python_version < '3.9'",
    ],
)
def test_every_spelling_of_azureml_defaults_is_left_out(entry: str) -> None:
    result = recipe(_env("python=3.11", {"pip": [entry, "numpy==2.1.0"]}))
    assert result.requirements == ("numpy==2.1.0", "inference-schema")
    assert len(result.dropped) == 1
    assert entry in result.dropped[0] and "modelport replica runtime" in result.dropped[0]


def test_each_v1_package_gets_one_line_naming_what_replaces_it() -> None:
    result = recipe(
        _env(
            "python=3.11",
            "azureml-core",  # a conda entry too
            {
                "pip": [
                    "azureml-defaults==1.44.0",
                    "azureml-monitoring==0.1.0a21",
                    "inference-schema[numpy-support]==1.3.0",
                    "azureml-inference-server-http==0.4.2",
                    "applicationinsights==0.11.9",
                    "scikit-learn==1.5.2",
                ]
            },
        )
    )
    assert result.requirements == ("scikit-learn==1.5.2", "inference-schema[numpy-support]")
    lines = "\n".join(result.dropped)
    assert len(result.dropped) == 6, lines
    assert "azureml-core (conda) left out: the replica provides azureml.core.model" in lines
    assert (
        "azureml-monitoring==0.1.0a21 (pip) left out: the replica provides azureml.monitoring"
        in lines
    )
    assert (
        "inference-schema[numpy-support]==1.3.0 (pip) left out: a current inference-schema" in lines
    )
    assert "applicationinsights==0.11.9 (pip) left out: no replacement" in lines
    assert not result.problems


def test_an_unpinned_inference_schema_is_kept_without_a_line() -> None:
    result = recipe(_env({"pip": ["inference-schema[pandas-support]", "azureml-defaults"]}))
    assert result.requirements == ("inference-schema[pandas-support]",)
    assert len(result.dropped) == 1 and "azureml-defaults" in result.dropped[0]


def test_conda_names_channels_and_what_cannot_build() -> None:
    result = recipe(
        _env(
            "conda-forge::pytorch=2.3",
            "cudatoolkit=11.8",
            "numpy=1.26=py311h1234_0",
            {"pip": ["-r other.txt", "./my_pkg", "-e .", "--extra-index-url https://x"]},
            channels=["anaconda", "conda-forge"],
        )
    )
    assert result.requirements == ("torch==2.3.*", "numpy==1.26.*", "--extra-index-url https://x")
    assert any("pytorch=2.3 is installed as torch==2.3.* from PyPI" in n for n in result.notes)
    assert any("channels anaconda, conda-forge are not used" in n for n in result.notes)
    problems = "\n".join(result.problems)
    assert "conda package 'cudatoolkit' has no same-named package on PyPI" in problems
    assert "'-r other.txt' includes another file" in problems
    assert "'./my_pkg' is a path" in problems and "'-e .' is a path" in problems


def test_build_key_is_not_the_content_hash_and_follows_the_recipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _env("python=3.11", {"pip": ["six==1.16.0"]})
    key = builder.build_key(spec)
    assert key != spec.content_hash()  # a build of an older recipe is never found
    monkeypatch.setattr(builder, "RUNTIME_PACKAGES", (*builder.RUNTIME_PACKAGES, "werkzeug>=3"))
    assert builder.build_key(spec) != key
    monkeypatch.setattr(builder, "RECIPE_VERSION", builder.RECIPE_VERSION + 1)
    assert len({builder.build_key(spec), key}) == 2


@pytest.mark.parametrize(
    ("entry", "allows", "refuses"),
    [
        ("python=3.6.2", [(3, 6, 2)], [(3, 6, 3), (3, 11, 7)]),
        ("python=3.11", [(3, 11, 0), (3, 11, 7)], [(3, 12, 0), (3, 1, 0)]),
        ("python 3.11.*", [(3, 11, 7)], [(3, 10, 9)]),
        ("python==3.11.7", [(3, 11, 7)], [(3, 11, 2)]),
        ("python>=3.8,<3.12", [(3, 8, 0), (3, 11, 7)], [(3, 12, 0), (3, 7, 9)]),
        ("python~=3.10", [(3, 10, 1), (3, 13, 0)], [(3, 9, 9), (4, 0, 0)]),
        ("python=3.9|3.11", [(3, 9, 1), (3, 11, 2)], [(3, 10, 0)]),
        ("conda-forge::python=3.11=h955ad1f_0", [(3, 11, 7)], [(3, 10, 0)]),
    ],
)
def test_python_pins_read_as_conda_does(
    entry: str, allows: list[tuple[int, ...]], refuses: list[tuple[int, ...]]
) -> None:
    constraint = pythons.python_constraint(entry)
    assert constraint is not None
    assert all(constraint.allows(v) for v in allows)
    assert not any(constraint.allows(v) for v in refuses)


def test_python_without_a_version_pins_nothing_and_nonsense_is_refused() -> None:
    assert pythons.python_constraint("python") is None
    with pytest.raises(InvalidInputError, match="cannot read the Python version"):
        pythons.python_constraint("python=three")


def test_an_unavailable_pin_names_the_pin_what_there_is_and_the_fix() -> None:
    found = pythons.parse_uv_list(
        "cpython-3.12.1-linux-x86_64-gnu    /opt/py312/bin/python3.12\n"
        "cpython-3.10.13-linux-x86_64-gnu    /usr/bin/python3.10 -> python3\n"
        "pypy-3.10.14-linux-x86_64-gnu    /opt/pypy/bin/pypy3\n"
    )
    assert found[0] == Interpreter((3, 12, 1), "/opt/py312/bin/python3.12")
    constraint = pythons.python_constraint("python=3.6.2")
    assert constraint is not None
    assert pythons.choose(constraint, found) is None
    message = pythons.pin_problem("sklearn-env", constraint, found)
    assert "environment 'sklearn-env' pins python=3.6.2" in message
    assert "3.12.1 (/opt/py312/bin/python3.12)" in message and "3.10.13" in message
    assert "Fix: change the pin to one of them (e.g. python=3.12)" in message


def test_the_newest_fitting_interpreter_is_chosen_unless_the_servers_own_fits() -> None:
    found = pythons.parse_uv_list(
        "cpython-3.9.18-linux-x86_64-gnu    /a/python3.9\n"
        "cpython-3.9.2-linux-x86_64-gnu    /b/python3.9\n"
    )
    chosen = pythons.choose(pythons.python_constraint("python=3.9"), found)
    assert chosen == Interpreter((3, 9, 18), "/a/python3.9")
    own = pythons.server_interpreter()
    assert pythons.choose(None, found) == own
    pin = pythons.python_constraint(f"python={own.version[0]}.{own.version[1]}")
    assert pythons.choose(pin, found) == own


def test_build_problems_lists_everything_that_will_not_build() -> None:
    spec = EnvironmentSpec.from_document(
        {
            "name": "e",
            "python": {
                "baseCondaEnvironment": "my-clone",
                "condaDependencies": {"dependencies": ["mkl", {"pip": ["-c constraints.txt"]}]},
            },
            "r": {"rVersion": "4.0"},
        }
    )
    problems = builder.build_problems(spec)
    assert len(problems) == 4, problems
    assert "conda package 'mkl'" in problems[0] and "includes another file" in problems[1]
    assert "baseCondaEnvironment 'my-clone'" in problems[2]
    assert "R section" in problems[3]
    user = EnvironmentSpec.from_document(
        {
            "name": "u",
            "python": {"userManagedDependencies": True, "interpreterPath": "/no/such/python"},
        }
    )
    assert builder.build_problems(user) == [
        "environment 'u' is user-managed with interpreter '/no/such/python', "
        "which is not on this machine"
    ]
