"""What a replica counts about itself: init() time, run() times, collected rows.

Plain numbers updated where the work happens (one bisect and two additions per
request); the health thread answers ``GET /stats`` with them as JSON, so whoever
scrapes metrics reads a replica without touching its scoring port.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

# As the router's latency buckets (router/stats.py): the runtime imports no router code.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class ReplicaCounters:
    init_seconds: float | None = None
    run_counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    run_total: float = 0.0

    def observe_run(self, seconds: float) -> None:
        self.run_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.run_total += seconds

    def as_json(self) -> dict[str, Any]:
        from modelport.runtime import collection

        sink = collection.current_sink()
        rows = {"written": 0, "dropped": 0, "failed": 0}
        if sink is not None:
            rows = {"written": sink.written, "dropped": sink.dropped, "failed": sink.failed}
        return {
            "initSeconds": self.init_seconds,
            "runBounds": list(BUCKETS),
            "runCounts": list(self.run_counts),
            "runSum": self.run_total,
            "collectedRows": rows,
        }

    def body(self) -> bytes:
        return json.dumps(self.as_json()).encode()


COUNTERS = ReplicaCounters()
