"""What the compute target of this machine can enforce, for warnings before and at deploy."""

from __future__ import annotations

from pathlib import Path

from modelport.compute.local import limits
from modelport.home import workspace_key
from modelport.spec.support import Target


def local_target(home: Path) -> Target:
    """The local target; tries a cgroup once to know whether CPU and memory are enforced."""
    return Target("local", limits.check(f"{workspace_key(home)}/probe"))
