"""A throwaway PostgreSQL cluster for the test session: temp dir, a Unix socket only.

Listening on no TCP port at all, it can never lose a port picked as free to
another process before it binds.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError(
                "PostgreSQL is not installed: the store tests run against it too. "
                "Install it with `apt-get install postgresql` (.ci/run does)."
            )
        self.pg_ctl = pg_ctl
        self.dir = Path(tempfile.mkdtemp(prefix="modelport-pg-"))
        self.data = self.dir / "data"
        # initdb refuses to run as root; run the cluster as the postgres user then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.dir, "postgres")
        self._run([initdb, "-D", str(self.data), "-U", "modelport", "--auth=trust", "-E", "UTF8"])
        options = f"-c listen_addresses='' -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(
            [
                pg_ctl,
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.dir / "log"),
                "-w",
                "start",
            ]
        )
        self.url = self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://modelport@/{name}?host={self.dir}"

    def _run(self, command: list[str]) -> None:
        subprocess.run([*self.prefix, *command], check=True, capture_output=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def set_read_only(self, database: str, on: bool) -> None:
        """As an operator would: the default for new sessions, and the old ones ended."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as admin:
            value = "on" if on else "off"
            admin.execute(
                f'ALTER DATABASE "{database}" SET default_transaction_read_only = {value}'
            )
            if on:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (database,),
                )

    def stop(self) -> None:
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
