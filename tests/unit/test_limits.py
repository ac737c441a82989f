"""CPU and memory settings as cgroup files (pure mapping), and a real group where allowed."""

from __future__ import annotations

import os

from modelport.compute.local import limits
from modelport.compute.local.limits import GB, Resources, v1_files, v2_files


def test_requests_are_weights_and_limits_are_hard() -> None:
    res = Resources(cpu=0.5, cpu_limit=1.5, memory_gb=0.5, memory_gb_limit=2.0)
    assert v1_files(res) == {
        "cpu": {"cpu.shares": "512", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "150000"},
        "memory": {
            "memory.soft_limit_in_bytes": str(GB // 2),
            "memory.limit_in_bytes": str(2 * GB),
        },
    }
    v2 = v2_files(res)
    assert v2["cpu.max"] == "150000 100000" and v2["memory.max"] == str(2 * GB)
    assert v2["memory.low"] == str(GB // 2) and 1 <= int(v2["cpu.weight"]) < 100


def test_nothing_given_writes_nothing() -> None:
    assert v1_files(Resources()) == {} and v2_files(Resources()) == {}
    assert not Resources().any and Resources(memory_gb_limit=1.0).any


def test_a_real_group_holds_the_limit_or_says_why_not() -> None:
    reason = limits.check("modelport-test/probe")
    if reason is not None:  # this machine lets us write no cgroup: the reason says so
        assert "not writable" in reason or "not mounted" in reason or "cannot read" in reason
        return
    group = limits.create(f"modelport-test/{os.getpid()}", Resources(memory_gb_limit=0.25))
    try:
        written = [
            (d / name).read_text().strip()
            for d in group.dirs
            for name in ("memory.limit_in_bytes", "memory.max")
            if (d / name).exists()
        ]
        assert written == [str(GB // 4)]
        assert group.oom_kills() == 0
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs)
