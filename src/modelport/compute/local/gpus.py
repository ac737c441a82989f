"""This machine's GPUs, dealt to replicas: ``gpu_cores`` on the local target.

The inventory is what the server was given (``CUDA_VISIBLE_DEVICES``, the usual way to
hand a process some of a machine's GPUs), else what ``nvidia-smi`` lists, else none.
Each replica gets ``gpu_cores`` devices of its own (its ``CUDA_VISIBLE_DEVICES``); a
generation that would need more than are free (not held by other services' replicas)
is Unschedulable, with the counts.  The replicas of one service's previous generation
do not count: during an update both generations share the devices briefly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection, Mapping, Sequence

VARIABLE = "CUDA_VISIBLE_DEVICES"
FOR_SHIM = "MODELPORT_GPU_DEVICES"  # a replica's devices, from its handle to its shim
NVIDIA_SMI_TIMEOUT_S = 10.0


def inventory(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The GPUs replicas may use (device indices or UUIDs, as CUDA takes them)."""
    given = env.get(VARIABLE)
    if given is not None:
        return tuple(d.strip() for d in given.split(",") if d.strip() not in ("", "-1"))
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return ()
    try:
        listed = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in listed.splitlines() if line.strip())


def pick(devices: Sequence[str], taken: Collection[str], count: int) -> tuple[str, ...] | None:
    """``count`` free devices, the first ones in inventory order; None if too few."""
    free = [d for d in devices if d not in taken]
    return tuple(free[:count]) if len(free) >= count else None


def shortage(
    devices: Sequence[str], taken: Collection[str], per_replica: int, replicas: int
) -> str | None:
    """Why ``replicas`` replicas of ``per_replica`` GPUs each cannot start, or None."""
    free = sum(d not in taken for d in devices)
    need = per_replica * replicas
    if need <= free:
        return None
    machine = f"this machine has {len(devices)}" if devices else "this machine has none"
    return (
        f"not enough GPUs: {replicas} replica(s) of gpu_cores {per_replica} need {need}; "
        f"{machine}, {free} free"
    )
