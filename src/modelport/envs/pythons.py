"""Which Python an environment runs on: the conda ``python`` pin against this machine.

A conda specification pins its interpreter with a conda version spec
(``python=3.6.2``, ``python>=3.8,<3.12``, ``python 3.10.*``).  :func:`python_constraint`
reads one into plain comparisons, :func:`choose` picks an interpreter that satisfies
it (the server's own first, else the newest uv finds), and :func:`pin_problem`
words the refusal when none does.  Only :func:`installed` does I/O: it asks uv
(downloads off) which interpreters this machine has.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from modelport.errors import InvalidInputError

Version = tuple[int, ...]

_OPERATORS = ("==", "!=", ">=", "<=", "~=", ">", "<", "=")
_VERSION = re.compile(r"^\d+(?:\.\d+)*(?:\.\*|\*)?$")
_UV_KEY = re.compile(r"^(?P<impl>[a-z]+)-(?P<version>\d+\.\d+\.\d+)")
_DISCOVERY_TTL_S = 60.0


@dataclass(frozen=True)
class Interpreter:
    version: Version
    path: str

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def label(self) -> str:
        return f"{self.version_text} ({self.path})"


@dataclass(frozen=True)
class Clause:
    """One comparison: ``op`` is ==, !=, >=, <=, >, < or "prefix" (conda's fuzzy ``=``)."""

    op: str
    version: Version

    def holds(self, version: Version) -> bool:
        if self.op == "prefix":
            return version[: len(self.version)] == self.version
        width = max(len(version), len(self.version))
        have, want = _pad(version, width), _pad(self.version, width)
        return {
            "==": have == want,
            "!=": have != want,
            ">=": have >= want,
            "<=": have <= want,
            ">": have > want,
            "<": have < want,
        }[self.op]


@dataclass(frozen=True)
class Constraint:
    """Alternatives (conda ``|``) of conjunctions (conda ``,``); ``text`` as written."""

    text: str
    alternatives: tuple[tuple[Clause, ...], ...]

    def allows(self, version: Version) -> bool:
        return any(all(c.holds(version) for c in group) for group in self.alternatives)


def _pad(version: Version, width: int) -> Version:
    return version + (0,) * (width - len(version))


def _parse_version(text: str, where: str) -> tuple[Version, bool]:
    """``3.8.*`` → ((3, 8), wildcard=True)."""
    if not _VERSION.match(text):
        raise InvalidInputError(f"{where}: cannot read the Python version {text!r}")
    wildcard = text.endswith("*")
    parts = text.rstrip("*").rstrip(".")
    return tuple(int(p) for p in parts.split(".")), wildcard


def _clause(text: str, where: str) -> list[Clause]:
    op = next((o for o in _OPERATORS if text.startswith(o)), "")
    version, wildcard = _parse_version(text[len(op) :].strip(), where)
    if op in ("", "=") or (op == "==" and wildcard):
        return [Clause("prefix", version)]  # conda: "=3.8" and "3.8" mean 3.8.*
    if op == "~=":
        return [Clause(">=", version), Clause("prefix", version[:-1] or version)]
    if op == "!=" and wildcard:
        raise InvalidInputError(f"{where}: '!=' with a wildcard is not supported ({text!r})")
    return [Clause(op, version)]


def python_constraint(entry: str) -> Constraint | None:
    """The constraint of a conda ``python`` dependency; None when it pins nothing."""
    rest = entry.split("::")[-1].strip()[len("python") :].strip()
    if not rest:
        return None
    if rest.startswith("["):
        raise InvalidInputError(f"{entry!r}: write the Python pin as python=3.11 or python>=3.10")
    spec = rest.split()[0]  # "python 3.8 h1234_0": the version, then a build string
    if spec.startswith("=") and not spec.startswith("=="):
        spec = "=" + spec[1:].split("=")[0]  # "python=3.8=h1234_0" likewise
    alternatives = tuple(
        tuple(c for part in group.split(",") if part for c in _clause(part, entry))
        for group in spec.split("|")
    )
    return Constraint(spec, alternatives)


def server_interpreter() -> Interpreter:
    return Interpreter(tuple(sys.version_info[:3]), sys.executable)


def choose(constraint: Constraint | None, found: Sequence[Interpreter]) -> Interpreter | None:
    """The server's own interpreter when it fits, else the newest fitting one, else None."""
    own = server_interpreter()
    if constraint is None or constraint.allows(own.version):
        return own
    fitting = [i for i in found if constraint.allows(i.version)]
    return max(fitting, key=lambda i: i.version, default=None)


def pin_problem(name: str, constraint: Constraint, found: Sequence[Interpreter]) -> str:
    """Why ``python<pin>`` cannot build here, what there is, and what to do."""
    seen: dict[Version, Interpreter] = {}
    for interpreter in [server_interpreter(), *found]:
        seen.setdefault(interpreter.version, interpreter)
    available = sorted(seen.values(), key=lambda i: i.version, reverse=True)
    newest = ".".join(map(str, available[0].version[:2]))
    return (
        f"environment {name!r} pins python{_shown(constraint.text)} in its conda "
        "specification, and this machine has no such Python. Pythons available here: "
        + ", ".join(i.label() for i in available)
        + f". Fix: change the pin to one of them (e.g. python={newest}); packages pinned for "
        "an old Python may need newer versions too. Or install a matching Python where uv "
        "finds it (on PATH, or `uv python install`) and deploy again."
    )


def _shown(text: str) -> str:
    return text if text[0] in "=<>!~" else f" {text}"


# -- discovery (I/O) -------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: tuple[float, list[Interpreter]] | None = None


def installed() -> list[Interpreter]:
    """Interpreters uv finds on this machine with downloads off (cached for a minute)."""
    global _cache
    with _cache_lock:
        if _cache is not None and time.monotonic() - _cache[0] < _DISCOVERY_TTL_S:
            return _cache[1]
        found = _ask_uv()
        _cache = (time.monotonic(), found)
        return found


def _ask_uv() -> list[Interpreter]:
    from uv import find_uv_bin

    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": ""}
    done = subprocess.run(
        [find_uv_bin(), "python", "list", "--only-installed"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",  # not a project folder: its .venv would be listed too
    )
    return parse_uv_list(done.stdout)


def parse_uv_list(text: str) -> list[Interpreter]:
    """Lines of ``uv python list``: ``cpython-3.11.7-linux-x86_64-gnu    /usr/bin/python3``."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        match = _UV_KEY.match(fields[0]) if len(fields) >= 2 else None
        if match:
            version = tuple(int(p) for p in match.group("version").split("."))
            out.append(Interpreter(version, fields[1]))
    return out
