"""HTTP access to the management API; server errors come back as ModelportError."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from modelport.errors import InvalidInputError, ModelportError, ServerUnavailableError, from_body
from modelport.sdk.tls import client_context, tls_failure

_FOLLOW = httpx.Timeout(10.0, read=None)
_HINT = "start the server with `modelport up --detach` (or check the url in config.json)"


class ApiClient:
    """``verify``: the trust for an https ``url`` (default: ``sdk/tls.py``'s choice)."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout_s: float = 60.0,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            verify=verify or client_context(),
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the JSON answer, or the server's error raised as ours."""
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else None

    def exists(self, path: str) -> bool:
        response = self._send("HEAD", path, ok=(200, 404))
        return response.status_code == 200

    def download(self, path: str, target: IO[bytes]) -> str:
        """Stream a file into ``target``; returns the sha256 of what arrived."""
        digest = hashlib.sha256()
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                for chunk in response.iter_bytes(1 << 20):
                    digest.update(chunk)
                    target.write(chunk)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return digest.hexdigest()

    def stream_lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """A streamed answer's lines as they come; no read timeout (a followed log may
        be quiet for long).  Closing the iterator closes the connection."""
        try:
            with self._http.stream("GET", path, params=params, timeout=_FOLLOW) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _send(
        self, method: str, path: str, ok: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400 and response.status_code not in ok:
            raise _error(response)
        return response

    def _unreachable(self, exc: httpx.TransportError) -> ModelportError:
        refused = tls_failure(exc, self.url)
        if refused is not None:
            return refused
        if isinstance(exc, httpx.TimeoutException):
            return ServerUnavailableError(
                f"the modelport server at {self.url} did not answer in time"
            )
        return ServerUnavailableError(
            f"cannot reach the modelport server at {self.url}", hint=_HINT
        )


def _error(response: httpx.Response) -> ModelportError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return from_body(response.status_code, body)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def collect_files(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, real path) of every file under ``root``, basename first.

    Symbolic links are followed only while they stay inside ``root``; one that points
    outside is refused, so registering a folder never uploads files beside it.
    """
    if not root.exists():
        raise InvalidInputError(f"model_path {str(root)!r} does not exist")
    base = root.name
    real_root = root.resolve()
    if root.is_file():
        return [(base, root)]
    out: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for current, dirs, files in os.walk(root, followlinks=True):
        real = Path(current).resolve()
        check_inside(Path(current), real, real_root, "model folder")
        if real in seen:  # a link cycle
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        rel = Path(current).relative_to(root)
        for name in sorted(files):
            path = Path(current) / name
            check_inside(path, path.resolve(), real_root, "model folder")
            if not path.resolve().is_file():
                raise InvalidInputError(f"{str(path)!r} is not a regular file")
            out.append(((Path(base) / rel / name).as_posix(), path))
    return out


def check_inside(path: Path, real: Path, root: Path, folder: str) -> None:
    if real != root and root not in real.parents:
        raise InvalidInputError(
            f"{str(path)!r} is a link that leads outside the {folder}; copy the file in instead"
        )
