"""Loopback addresses for pods and load balancers, handed out machine-wide.

Every address in 127.0.0.0/8 reaches this machine, so each pod can bind its own. Two test
clusters may run at once on one machine, so an address is held with an exclusive
``flock`` on a file named after it: the lock goes when it is released or when the
holding process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCKS = Path("/tmp/kube-harness-addresses")


class AddressesExhausted(Exception):
    pass


class AddressPool:
    """``PREFIX.1`` to ``PREFIX.254``, round robin (a freed address is not reused at once)."""

    def __init__(self, prefix: str, locks: Path = LOCKS) -> None:
        self.prefix = prefix
        self._locks = locks
        self._held: dict[str, int] = {}
        self._next = 1

    def acquire(self) -> str:
        self._locks.mkdir(mode=0o1777, parents=True, exist_ok=True)
        for step in range(254):
            host = (self._next - 1 + step) % 254 + 1
            address = f"{self.prefix}.{host}"
            if address in self._held:
                continue
            fd = os.open(self._locks / address, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._held[address] = fd
            self._next = host % 254 + 1
            return address
        raise AddressesExhausted(f"no free address left in {self.prefix}.0/24")

    def release(self, address: str) -> None:
        fd = self._held.pop(address, None)
        if fd is not None:
            os.close(fd)  # closing drops the lock

    def release_all(self) -> None:
        for address in list(self._held):
            self.release(address)
