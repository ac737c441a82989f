"""``InferenceConfig`` (contract §2.2): entry script, source directory, environment.

A legacy configuration (``runtime="python"``, ``conda_file``, docker settings,
no ``environment``) means what v1's ``Model.deploy`` turned it into: an environment
named ``<service>-env`` built from the conda file (:func:`legacy_environment`,
:func:`convert_legacy`).  Pure: callers read the files and pass their text.
"""

from __future__ import annotations

import ast
import keyword
from pathlib import PurePath
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from modelport.batching import MAX_BATCH_SIZE, BatchSettings
from modelport.errors import ConfigError
from modelport.spec.document import pydantic_messages
from modelport.spec.environment import EnvironmentSpec, conda_environment_document

LEGACY_FIELDS = (
    "runtime",
    "conda_file",
    "extra_docker_file_steps",
    "enable_gpu",
    "base_image",
    "base_image_registry",
    "cuda_version",
)
# Older docs spelled it extraDockerFileSteps; the v1 CLI reads extraDockerfileSteps.
_FILE_KEY_ALIASES = {"extraDockerfileSteps": "extraDockerFileSteps"}
# The images v1 put under a converted legacy configuration (azureml-core's
# DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE and the CUDA 9 image); they only record
# what v1 would have run: the local target runs no images.
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"
CUDA_9_IMAGE = "mcr.microsoft.com/azureml/base-gpu:intelmpi2018.3-cuda9.0-cudnn7-ubuntu16.04"


class InferenceConfigSpec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    entry_script: str
    source_directory: str | None = None
    environment: EnvironmentSpec | None = None
    description: str | None = None
    runtime: Literal["python", "spark-py"] | None = None
    conda_file: str | None = None
    extra_docker_file_steps: str | None = None
    enable_gpu: bool | None = None
    base_image: str | None = None
    base_image_registry: dict[str, Any] | None = None
    cuda_version: Literal["9.0", "9.1", "10.0"] | None = None

    @classmethod
    def create(cls, values: dict[str, Any], where: str = "inference config") -> Self:
        try:
            config = cls.model_validate(values)
        except PydanticValidationError as exc:
            raise ConfigError("\n".join(pydantic_messages(exc, cls, where))) from exc
        problems = config.problems()
        if problems:
            raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
        return config

    @classmethod
    def from_document(cls, doc: dict[str, Any], filename: str = "inferenceconfig.json") -> Self:
        doc = {_FILE_KEY_ALIASES.get(k, k): v for k, v in doc.items()}
        return cls.create(doc, where=filename)

    def problems(self) -> list[str]:
        out = []
        given_legacy = [f for f in LEGACY_FIELDS if getattr(self, f) is not None]
        if self.environment is not None and given_legacy:
            out.append(
                "Error, unable to provide runtime, conda_file, extra_docker_file_steps, "
                "enable_gpu, base_image, base_image_registry, cuda_version along with an "
                f"environment object. (got {', '.join(given_legacy)})"
            )
        if self.runtime == "spark-py":
            out.append(
                "runtime 'spark-py' is not supported: modelport runs Python scoring scripts "
                "(runtime 'python', or an environment)"
            )
        script = PurePath(self.entry_script)
        if script.suffix != ".py":
            out.append(
                "Invalid driver type. Currently only Python drivers are supported. "
                f"(got entry_script={self.entry_script!r})"
            )
        elif not script.stem.isidentifier() or keyword.iskeyword(script.stem):
            out.append(
                f"entry_script {self.entry_script!r}: its name must be an importable Python "
                "module name (letters, digits and '_', not starting with a digit, not a keyword)"
            )
        return out

    @property
    def is_legacy(self) -> bool:
        """Legacy parts given instead of an environment (v1 converts them at deploy)."""
        return self.environment is None and any(getattr(self, f) is not None for f in LEGACY_FIELDS)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def legacy_environment(
    config: InferenceConfigSpec,
    conda_text: str | None,
    service_name: str,
    *,
    docker_steps: str | None = None,
) -> EnvironmentSpec | None:
    """The environment v1's ``Model.deploy`` makes of a legacy configuration.

    ``conda_text`` is the content of ``config.conda_file`` and ``docker_steps`` that
    of ``config.extra_docker_file_steps`` (both relative to the source directory).
    The docker settings land where v1 puts them, so what the local target does not
    apply is seen and reported.  None when there is nothing to convert (no conda
    file, no docker setting): the replicas then use the server's interpreter, as for
    a configuration without an environment.
    """
    if not config.is_legacy:
        return config.environment
    if config.conda_file and conda_text is None:
        raise ConfigError(f"conda_file {config.conda_file!r}: its content is needed")
    docker = _legacy_docker(config, docker_steps)
    if conda_text is None and not docker:
        return None
    name = f"{service_name}-env"
    doc: dict[str, Any] = {"name": name}
    if config.conda_file and conda_text is not None:
        doc = conda_environment_document(name, conda_text, config.conda_file)
    if config.base_image:
        doc["inferencingStackVersion"] = "latest"
    doc["docker"] = docker
    where = f"conda_file {config.conda_file}" if config.conda_file else "legacy settings"
    return EnvironmentSpec.from_document(doc, where=where)


def _legacy_docker(config: InferenceConfigSpec, steps: str | None) -> dict[str, Any]:
    docker: dict[str, Any] = {}
    if config.base_image:
        docker["baseImage"] = config.base_image
    if config.base_image_registry:
        docker["baseImageRegistry"] = config.base_image_registry
    if config.enable_gpu or config.cuda_version in ("10.0", "9.1"):
        docker["gpuSupport"] = True
        docker.setdefault("baseImage", DEFAULT_GPU_IMAGE)
    elif config.cuda_version == "9.0":
        docker["gpuSupport"] = True
        docker.setdefault("baseImage", CUDA_9_IMAGE)
    if config.extra_docker_file_steps:
        if steps is None:
            raise ConfigError(
                f"extra_docker_file_steps {config.extra_docker_file_steps!r}: its content is needed"
            )
        # v1 appended the steps to the image's Dockerfile: keep them as one.
        base = docker.pop("baseImage", DEFAULT_CPU_IMAGE)
        docker["baseDockerfile"] = f"FROM {base}\n{steps.rstrip()}\n"
    return docker


def convert_legacy(
    config: InferenceConfigSpec,
    service_name: str,
    conda_text: str | None = None,
    docker_steps: str | None = None,
) -> InferenceConfigSpec:
    """``config`` with its legacy parts turned into an ``environment`` (v1's deploy)."""
    if not config.is_legacy:
        return config
    env = legacy_environment(config, conda_text, service_name, docker_steps=docker_steps)
    kept = config.model_dump(exclude=set(LEGACY_FIELDS) | {"environment"}, exclude_none=True)
    if env is not None:
        kept["environment"] = env.model_dump()
    return type(config).create(kept)


def batch_size(source: str, filename: str) -> int:
    """``max_batch_size`` of a ``@batched`` run() in the entry script, 0 for none.

    The router must know it before the replica starts, so it is read from the
    source: the decorator's arguments must be literals."""
    tree = ast.parse(source, filename=filename)
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name != "run":
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and _names_batched(decorator.func):
                return _literal_size(decorator, filename)
    return 0


def _names_batched(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "batched") or (
        isinstance(func, ast.Attribute) and func.attr == "batched"
    )


def _literal_size(call: ast.Call, filename: str) -> int:
    given = call.args[:1] or [k.value for k in call.keywords if k.arg == "max_batch_size"]
    if not given:
        return BatchSettings().max_batch_size
    try:
        size = ast.literal_eval(given[0])
        return BatchSettings(size).max_batch_size
    except ValueError as exc:
        raise ConfigError(
            f"entry script {filename}: @batched(max_batch_size=...) must be an int literal "
            f"from 1 to {MAX_BATCH_SIZE} (the router reads it at deploy)"
        ) from exc


def check_entry_script_source(source: str, filename: str) -> None:
    """Refuse an entry script that does not parse, naming the line."""
    try:
        ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise ConfigError(
            f"entry script {filename} has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from exc
