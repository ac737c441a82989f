"""Landlock confinement of a local replica: its scoring code reads only its service's files.

A replica may write to its app root (source and models), a private temp folder
and ``/dev``; it may read and execute its Python environment, the interpreter's
installation, this runtime and the system trees.  Nothing else is allowed, so the
workspace home (``config.json``, ``workspace.db``, ``secrets.key``, ``tls/``,
other services, logs) stays out of reach; a rule never covers the home or a
folder above it.  Of ``/proc`` it reads its own process's entries and the
machine-wide files (``cpuinfo``, ``meminfo``, ...), never another process's
``environ``.  Landlock also stops it from tracing any process outside its domain
and, from ABI 6 on, from signalling one.  :func:`plan` decides the rules (pure);
the supervisor builds them once to check them, and again in the replica's process,
where ``/proc/self`` is that process, just before exec (:func:`enter`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# System calls (the same numbers on every architecture) and their flags.
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2

# Filesystem rights, and the ABI that introduced each.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
ABI1_RIGHTS = (1 << 13) - 1  # execute .. make_sym
RIGHTS_BY_ABI = {1: ABI1_RIGHTS, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV}
# What a rule on a file (not a folder) may carry.
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ_ONLY = EXECUTE | READ_FILE | READ_DIR

# Read by any Python program with its usual libraries (numpy, scikit-learn, joblib).
SYSTEM_READ_ONLY = (
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/opt",
    "/sys",
    "/run/systemd/resolve",  # where /etc/resolv.conf often points
)
SYSTEM_READ_WRITE = ("/dev",)
# /proc: every folder may be listed (ps-like tools), files read only where they are
# the machine's, not another process's (its environ holds that process's secrets).
PROC = "/proc"
PROC_FILES = tuple(
    f"/proc/{name}"
    for name in (
        "cpuinfo",
        "meminfo",
        "stat",
        "loadavg",
        "uptime",
        "version",
        "filesystems",
        "swaps",
        "diskstats",
        "pressure",
        "sys",
        "driver",  # /proc/driver/nvidia, which CUDA reads
    )
)
OWN_PROC = "/proc/self"  # resolved in the replica's process: its own /proc/<pid>


class Unavailable(Exception):
    """Landlock cannot confine a replica here (the text says why)."""


@dataclass(frozen=True)
class Confinement:
    """What a replica may reach: ``guarded`` folders are never covered by a rule."""

    read_write: tuple[str, ...]
    read_only: tuple[str, ...]
    guarded: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Confinement:
        return cls(*(tuple(doc[k]) for k in ("read_write", "read_only", "guarded")))

    def with_writable(self, *paths: str) -> Confinement:
        return Confinement((*self.read_write, *paths), self.read_only, self.guarded)


@dataclass(frozen=True)
class Rule:
    path: str
    access: int


def handled_rights(abi: int) -> int:
    """Every filesystem right the running ABI knows: all of them are denied by default."""
    return sum(bits for since, bits in RIGHTS_BY_ABI.items() if abi >= since)


def _contains(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def plan(
    confinement: Confinement, abi: int, own_proc: bool = False
) -> tuple[list[Rule], list[str]]:
    """The rules for ``confinement`` (paths already resolved), and the paths left out
    because a rule on them would cover a guarded folder.  ``own_proc``: in the
    replica's process, which may read its own ``/proc/self``."""
    handled = handled_rights(abi)
    rules, dropped = [Rule(PROC, READ_DIR)], []
    wanted = [(p, handled) for p in confinement.read_write]
    read_only = (*confinement.read_only, *PROC_FILES, *((OWN_PROC,) if own_proc else ()))
    wanted += [(p, READ_ONLY & handled) for p in read_only]
    for path, access in wanted:
        if any(_contains(path, g) for g in confinement.guarded):
            dropped.append(path)
        else:
            rules.append(Rule(path, access))
    return rules, dropped


def python_paths(python: str) -> list[str]:
    """An environment's folders: the virtualenv of ``python`` and the installation it
    was made from (links resolved, as Landlock sees them)."""
    venv = Path(python).parent.parent
    interpreter = Path(os.path.realpath(python))
    return [os.path.realpath(venv), str(interpreter.parent.parent)]


def confinement_for(
    home: Path, app_root: Path, python: str, runtime: Path | None = None
) -> Confinement:
    """The local target's confinement of one generation's replicas."""
    import modelport

    read_only = [*SYSTEM_READ_ONLY, *python_paths(python), sys.base_prefix, sys.prefix]
    read_only.append(str(Path(modelport.__file__).parent.parent))  # this runtime's code
    if runtime is not None:
        read_only.append(str(runtime))
    resolved = [os.path.realpath(p) for p in read_only]
    writable = [os.path.realpath(p) for p in (*SYSTEM_READ_WRITE, str(app_root))]
    guarded = (os.path.realpath(home),)
    return Confinement(tuple(dict.fromkeys(writable)), tuple(dict.fromkeys(resolved)), guarded)


# -- the kernel ---------------------------------------------------------------------------
class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: Any) -> int:
    result = int(_libc.syscall(number, *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def abi_version() -> int:
    """The running kernel's Landlock ABI; raises :class:`Unavailable` without one."""
    try:
        return _syscall(CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            raise Unavailable("Landlock is not available on this kernel") from exc
        if exc.errno == errno.EOPNOTSUPP:
            raise Unavailable("Landlock is disabled on this machine (see lsm= at boot)") from exc
        raise Unavailable(f"Landlock cannot be queried: {exc.strerror}") from exc


def describe() -> str:
    """The line ``modelport up`` prints about what confines local replicas."""
    try:
        abi = abi_version()
    except Unavailable as exc:
        return f"isolation: NONE — {exc}: a score.py can read the workspace's secrets"
    return f"isolation: Landlock ABI {abi} (score.py reads only its service's files)"


def build(confinement: Confinement, abi: int, own_proc: bool = False) -> int:
    """A ruleset for ``confinement`` (a file descriptor, closed on exec); raises
    :class:`Unavailable` with the reason when one cannot be made."""
    rules, _ = plan(confinement, abi, own_proc)
    attr = _RulesetAttr(handled_rights(abi), 0, SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET)
    if abi < 6:  # scopes came with ABI 6; an older kernel refuses a field it lacks
        attr.scoped = 0
    try:
        ruleset = _syscall(CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    except OSError as exc:
        raise Unavailable(f"the Landlock ruleset cannot be created: {exc.strerror}") from exc
    try:
        for rule in rules:
            _add(ruleset, rule)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


def _add(ruleset: int, rule: Rule) -> None:
    try:
        fd = os.open(rule.path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # a system folder this machine lacks
    except OSError as exc:
        raise Unavailable(f"cannot open {rule.path} for a Landlock rule: {exc.strerror}") from exc
    try:
        access = rule.access
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= FILE_RIGHTS
        beneath = _PathBeneathAttr(access, fd)
        _syscall(ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(beneath), 0)
    except OSError as exc:
        raise Unavailable(f"Landlock refused a rule for {rule.path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def enter(ruleset: int) -> None:
    """Confine this process (and what it executes) for good; in a child before exec."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"no_new_privs: {os.strerror(code)}")
    _syscall(RESTRICT_SELF, ruleset, 0)
