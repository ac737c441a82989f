"""``python -m modelport.compute.kubernetes.stage``: a replica pod's staging step.

Run as the pod's init container, it lays the generation out as the local target
does: it asks the control plane where each file goes, fetches every file by its
sha256 and checks it (writing it under a temporary name and renaming it, so no
half file is ever in place), copies this modelport's replica runtime beside the
app (the replica's ``PYTHONPATH``), and builds the environment's virtualenv with
uv into the node's cache, or finds it there.

Settings (all from the pod spec, see :mod:`.pod`): ``MODELPORT_STAGE_URL``,
``MODELPORT_STAGE_TOKEN``, ``MODELPORT_SERVICE``, ``MODELPORT_GENERATION``,
``MODELPORT_APP_ROOT``, ``MODELPORT_RUNTIME_DIR``, ``MODELPORT_ENV_CACHE`` and,
when the generation has one, ``MODELPORT_ENVIRONMENT`` (its JSON document); with a
management API whose certificate comes from a private CA, ``MODELPORT_STAGE_CA``
(that CA's PEM: certificates are verified either way).

Exit codes, with one line on stderr saying why (the pod's termination message):
2 settings missing or wrong, 3 the control plane refused, 4 a file's content is
not what its hash says, 5 the control plane cannot be reached, 6 the environment
does not build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import modelport
from modelport.envs.builder import EnvironmentBuilder
from modelport.errors import EnvironmentBuildError, InvalidInputError
from modelport.spec.environment import EnvironmentSpec
from modelport.spec.model import check_relative_path

SETTINGS, REFUSED, CORRUPT, UNREACHABLE, BUILD = 2, 3, 4, 5, 6
CHUNK = 1 << 20
ATTEMPTS = 5  # connection attempts, one second apart then doubling
TIMEOUT_S = 60.0

Say = Callable[[str], None]


class StageError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    service: str
    generation: int
    app_root: Path
    runtime_dir: Path
    env_cache: Path
    environment: EnvironmentSpec | None
    ca: str | None = None  # PEM: the CA of a management API with a private certificate

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def need(name: str) -> str:
            value = env.get(name, "")
            if not value:
                raise StageError(SETTINGS, f"{name} is not set")
            return value

        generation = need("MODELPORT_GENERATION")
        if not generation.isdecimal():
            raise StageError(SETTINGS, f"MODELPORT_GENERATION {generation!r} is not a number")
        return cls(
            url=need("MODELPORT_STAGE_URL").rstrip("/"),
            token=need("MODELPORT_STAGE_TOKEN"),
            service=need("MODELPORT_SERVICE"),
            generation=int(generation),
            app_root=Path(need("MODELPORT_APP_ROOT")),
            runtime_dir=Path(need("MODELPORT_RUNTIME_DIR")),
            env_cache=Path(need("MODELPORT_ENV_CACHE")),
            environment=_environment(env.get("MODELPORT_ENVIRONMENT")),
            ca=env.get("MODELPORT_STAGE_CA") or None,
        )

    @property
    def path(self) -> str:
        return f"/api/v1/staging/{self.service}/{self.generation}"


def _environment(text: str | None) -> EnvironmentSpec | None:
    if not text:
        return None
    try:
        return EnvironmentSpec.model_validate(json.loads(text))
    except ValueError as exc:  # JSON or pydantic
        raise StageError(SETTINGS, f"MODELPORT_ENVIRONMENT is not an environment: {exc}") from exc


# -- talking to the control plane ------------------------------------------------------
class ControlPlane:
    """The staging API, with the generation's credential; errors become StageErrors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        trust = ssl.create_default_context(cadata=settings.ca) if settings.ca else True
        self.client = httpx.Client(
            verify=trust,
            base_url=settings.url,
            headers={"authorization": f"Bearer {settings.token}"},
            timeout=TIMEOUT_S,
        )

    def close(self) -> None:
        self.client.close()

    def layout(self) -> dict[str, Any]:
        response = self._send(self.settings.path, stream=False)
        try:
            data: dict[str, Any] = response.json()
            return data
        except ValueError as exc:
            raise StageError(REFUSED, f"the control plane's layout is not JSON: {exc}") from exc

    def download(self, sha256: str, target: Path) -> str:
        """Write the blob to ``target``; the sha256 of what arrived."""
        response = self._send(f"{self.settings.path}/blobs/{sha256}", stream=True)
        digest = hashlib.sha256()
        try:
            with target.open("wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                    f.write(chunk)
        except httpx.HTTPError as exc:
            raise StageError(UNREACHABLE, f"download of {sha256} broke off: {exc}") from exc
        finally:
            response.close()
        return digest.hexdigest()

    def _send(self, path: str, stream: bool) -> httpx.Response:
        delay = 1.0
        for attempt in range(ATTEMPTS):
            try:
                request = self.client.build_request("GET", path)
                response = self.client.send(request, stream=stream)
                break
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS - 1:
                    raise StageError(
                        UNREACHABLE, f"cannot reach the control plane at {self.settings.url}: {exc}"
                    ) from exc
                time.sleep(delay)
                delay *= 2
        if response.status_code >= 400:
            response.read()
            response.close()
            raise StageError(REFUSED, _refusal(response))
        return response


def _refusal(response: httpx.Response) -> str:
    """The control plane's own words: its one error body, else the status."""
    message = f"HTTP {response.status_code}"
    try:
        error = response.json().get("error", {})
        message = f"{error['message']} (HTTP {response.status_code}, {error['code']})"
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return f"the control plane refused {response.request.url.path}: {message}"


# -- the files ------------------------------------------------------------------------------
def place_files(plane: ControlPlane, layout: dict[str, Any], root: Path, say: Say) -> int:
    """Every file of the layout under ``root``, checked; the number fetched."""
    clear(root)
    for folder in layout["folders"]:
        (root / _relative(folder)).mkdir(parents=True, exist_ok=True)
    fetched: dict[str, Path] = {}
    for entry in layout["files"]:
        path = root / _relative(entry["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.part")
        known = fetched.get(entry["sha256"])
        if known is not None:
            shutil.copyfile(known, part)  # content already checked
        else:
            check(entry, plane.download(entry["sha256"], part), part)
        os.replace(part, path)
        fetched.setdefault(entry["sha256"], path)
    say(f"staged {len(layout['files'])} file(s), {len(fetched)} fetched")
    return len(fetched)


def check(entry: dict[str, Any], got: str, part: Path) -> None:
    if got != entry["sha256"]:
        part.unlink(missing_ok=True)
        raise StageError(
            CORRUPT,
            f"{entry['path']}: the content received has sha256 {got}, not {entry['sha256']}; "
            "refusing to stage it",
        )


def _relative(path: str) -> str:
    try:
        return check_relative_path(path)
    except InvalidInputError as exc:
        raise StageError(
            REFUSED, f"the layout names a path out of the app folder: {path!r}"
        ) from exc


def clear(root: Path) -> None:
    """An empty app folder (a restarted staging step finds what the last one left)."""
    root.mkdir(parents=True, exist_ok=True)
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# -- the runtime and the environment -------------------------------------------------------
def copy_runtime(target: Path) -> Path:
    """This modelport package under ``target`` (the replica's PYTHONPATH), as the local
    target's runtime copy: the user's environment gets the runtime without a pip install."""
    package = Path(modelport.__file__).parent
    final = target / "modelport"
    tmp = target / ".modelport.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(package, tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def build_environment(settings: Settings, say: Say) -> str | None:
    """The virtualenv's interpreter (None: the image's own Python serves)."""
    if settings.environment is None:
        say("no environment given: the replica runs the image's Python")
        return None
    # uv's download cache sits beside the builds, so a node fetches each wheel once
    os.environ.setdefault("UV_CACHE_DIR", str(settings.env_cache / "uv-cache"))
    builder = EnvironmentBuilder(settings.runtime_dir / "envs", settings.env_cache)
    try:
        return builder.ensure(settings.environment, say).python
    except EnvironmentBuildError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        raise StageError(BUILD, f"{exc.message}{hint}") from exc


def stage(settings: Settings, say: Say) -> None:
    plane = ControlPlane(settings)
    try:
        place_files(plane, plane.layout(), settings.app_root, say)
    except (KeyError, TypeError) as exc:
        raise StageError(REFUSED, f"the control plane's layout lacks {exc}") from exc
    finally:
        plane.close()
    copy_runtime(settings.runtime_dir)
    build_environment(settings, say)


def main() -> int:
    def say(line: str) -> None:
        print(line, flush=True)

    try:
        settings = Settings.from_env(os.environ)
        say(f"staging service {settings.service} generation {settings.generation}")
        stage(settings, say)
    except StageError as exc:
        print(f"staging failed: {exc.message}", file=sys.stderr, flush=True)
        return exc.code
    say("staged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
