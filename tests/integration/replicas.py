"""A replica (``python -m modelport.runtime``) as a real process on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import wait_for


class Replica:
    """The entry script at ``src/score.py`` of ``root``, with model ``lin:1`` beside it."""

    def __init__(
        self,
        root: Path,
        script: str,
        timeout_ms: int = 60000,
        workers: int = 1,
        env: dict[str, str] | None = None,
        unix: bool = False,
    ) -> None:
        (root / "azureml-models" / "lin" / "1" / "lin").mkdir(parents=True)
        (root / "azureml-models" / "lin" / "1" / "lin" / "w.json").write_text('{"scale": 3}')
        (root / "src").mkdir()
        (root / "src" / "score.py").write_text(textwrap.dedent(script))
        self.root = root
        # The socket is bound here and handed over, as the control plane does: no
        # port is ever free for someone else to take between a check and a bind.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self.log_path = root / "replica.log"
        self.log = self.log_path.open("wb")
        fds = [listener.fileno()]
        unix_env = {}
        self.unix_path = root / "replica.http"
        if unix:  # a Unix socket besides, as the local target hands its replicas
            unix_listener = socket.socket(socket.AF_UNIX)
            unix_listener.bind(str(self.unix_path))
            unix_listener.listen(128)
            fds.append(unix_listener.fileno())
            unix_env["MODELPORT_UNIX_FD"] = str(unix_listener.fileno())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelport.runtime",
                "--app-root",
                str(root),
                "--entry-script",
                "src/score.py",
                "--workers",
                str(workers),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONUNBUFFERED": "1",  # as the control plane starts replicas
                "SCORING_TIMEOUT_MS": str(timeout_ms),
                "AZUREML_MODEL_DIR": str(root / "azureml-models" / "lin" / "1"),
                "MODELPORT_LISTEN_FD": str(listener.fileno()),
                **unix_env,
                **(env or {}),
            },
            pass_fds=fds,
        )
        for fd in fds:
            socket.socket(fileno=fd).close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, self.log_text()
            try:
                return self.client.get("/").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, what="the replica to answer")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@contextmanager
def running(tmp_path: Path, script: str, **kw: Any) -> Iterator[Replica]:
    replica = Replica(tmp_path, script, **kw)
    try:
        replica.wait_ready()
        yield replica
    finally:
        replica.stop()


def exit_code(tmp_path: Path, script: str, **kw: Any) -> tuple[int, str]:
    """Start a replica expected to stop by itself: its exit code and log."""
    replica = Replica(tmp_path, script, **kw)
    try:
        code = replica.proc.wait(timeout=60)
    finally:
        replica.stop()
    return code, replica.log_path.read_text(errors="replace")
