"""The Kubernetes target next to the local one: deploy time, autoscale reaction and
scoring throughput, the same model, score.py and settings on both, one run.

    python benchmarks/kube_target.py [--seconds 8] [--connections 1,8,64] [--clients 4]
                                    [--deploys 2] [--purpose DevTest]

It starts its own test cluster (``scripts/kube-harness start`` in a temporary folder;
the binaries must have been built: ``scripts/kube-harness build``) and its own
``modelport up`` (own MODELPORT_HOME, ports 0), attaches the cluster and installs the
router there, then measures on ``local`` and on ``cluster``:

1. Seconds from ``Model.deploy`` to Healthy, iris with its scikit-learn environment,
   2 replicas, with a warm environment cache: one deploy warms it (on the cluster the
   first one builds the environment into the node cache, downloading from PyPI where
   that cache is cold; where the staging pod cannot reach PyPI, see ``build_on_host``),
   then ``--deploys`` new services are timed, alternating targets.
2. Autoscale reaction: a score.py whose run() sleeps 50 ms and answers with its pid,
   autoscale min 1 / max 4 / target 70 % / refresh 1 s, ``--clients`` closed-loop
   clients from t=0.  Seconds until the scale-up event, until the control plane reads
   a second replica Ready, until a client first gets an answer from a new replica, and
   until the policy's count is Ready.
3. Throughput of iris, 1 replica, key auth, with ``wrk`` (1 thread, 2 s warm-up) where
   installed, else a closed-loop httpx client with N connections: the local router, the
   cluster's scoring URI (the router Service's LoadBalancer address, which the test
   cluster's node agent emulates as a TCP proxy: one hop more), and the cluster's router
   pod reached at its own address (no load balancer), to tell the hop's cost apart.

Everything is removed at the end: the services, the server (``modelport down``), the
cluster (``scripts/kube-harness stop``), the temporary folder and whatever the run added
to the node's environment cache (/var/cache/modelport/envs/<image>, a hostPath); it then
checks that no process it started is left (and exits 1 if one is).  The local machine
cache (~/.cache/modelport/envs) is used as it is and stays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from _common import IRIS_ROW, ROOT, start_server, wrk

sys.path.insert(0, str(ROOT))  # the test cluster's process records (tests/kube)

from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Pod
from tests.kube.processes import (
    ProcessRecord,
    pids_in_mount_namespaces,
    records_from_json,
)

from modelport import (
    AksCompute,
    AksWebservice,
    ComputeTarget,
    InferenceConfig,
    Model,
    Webservice,
    Workspace,
)
from modelport.cli.demo import write_files
from modelport.compute.kubernetes.pod import image_key
from modelport.compute.kubernetes.settings import DEFAULT_ENV_CACHE, DEFAULT_IMAGE
from modelport.envs.builder import EnvironmentBuilder, build_key
from modelport.errors import ModelportError
from modelport.spec.environment import EnvironmentSpec

HARNESS = ROOT / "scripts" / "kube-harness"
NAMESPACE = "mp-bench"
ROUTER_POD_PORT = 8080
KINDS = ("local", "cluster")
MAX_REPLICAS = 4
NODE_CACHE = Path(DEFAULT_ENV_CACHE) / image_key(DEFAULT_IMAGE)  # the pods' hostPath

SLOW = """
    import os
    import time

    def init():
        pass

    def run(raw):
        time.sleep(0.05)
        return os.getpid()
"""

Figures = dict[str, float]


@dataclass
class Bench:
    """Both targets in one workspace: ``None`` is the local target."""

    ws: Workspace
    aks: AksCompute
    kube: Client
    work: Path
    services: list[str] = field(default_factory=list)

    def target(self, kind: str) -> AksCompute | None:
        return self.aks if kind == "cluster" else None

    def deploy(self, kind: str, name: str, model: Model, ic: InferenceConfig, dc: Any) -> float:
        """Seconds from ``Model.deploy`` until the service is Healthy."""
        started = time.perf_counter()
        service = Model.deploy(self.ws, name, [model], ic, dc, deployment_target=self.target(kind))
        self.services.append(name)
        service.wait_for_deployment()
        return time.perf_counter() - started

    def delete(self, name: str) -> None:
        """Delete the service; on the cluster, until its pods are gone (so a terminating
        pod does not take CPU from the next measurement)."""
        Webservice(self.ws, name).delete()
        self.services.remove(name)
        wait_until(
            lambda: (
                not list(
                    self.kube.list(Pod, namespace=NAMESPACE, labels={"modelport.io/service": name})
                )
            ),
            f"the pods of {name} to go",
        )

    def ready(self, name: str) -> int:
        replicas = Webservice(self.ws, name).serialize()["replicas"]
        return sum(r["state"] == "Ready" for r in replicas)

    def router_pods(self) -> list[str]:
        """The addresses of the router pods that run (none yet: '')."""
        found = []
        for pod in self.kube.list(Pod, namespace=NAMESPACE):
            meta, status = pod.metadata, pod.status
            ours = meta and meta.name and meta.name.startswith("modelport-router")
            if ours and meta and not meta.deletionTimestamp:
                found.append(str(status.podIP or "") if status else "")
        return found


# --- the cluster and the server ------------------------------------------------------


def harness(*args: str, timeout_s: float = 180) -> None:
    env = {**os.environ, "MODELPORT_PYTHON": sys.executable}
    done = subprocess.run(
        [str(HARNESS), *args], capture_output=True, text=True, env=env, timeout=timeout_s
    )
    if done.returncode != 0:
        raise SystemExit(f"kube-harness {args[0]} failed:\n{done.stdout}{done.stderr}")


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def attach(ws: Workspace, kubeconfig: Path, purpose: str) -> AksCompute:
    config = AksCompute.attach_configuration(
        kubeconfig=kubeconfig, namespace=NAMESPACE, cluster_purpose=purpose
    )
    target = ComputeTarget.attach(ws, "bench-aks", config)
    target.wait_for_completion()
    target.install()
    assert isinstance(target, AksCompute)
    return target


@dataclass
class Leftovers:
    """What to look for once everything is stopped."""

    records: list[ProcessRecord]
    namespaces: set[str]
    work: Path

    @classmethod
    def of_cluster(cls, folder: Path, work: Path) -> Leftovers:
        pids, items = [], []
        with contextlib.suppress(OSError, ValueError):
            pids = json.loads((folder / "pids.json").read_text())["processes"]
        with contextlib.suppress(OSError, ValueError):
            items = json.loads((folder / "agent" / "processes.json").read_text())
        spaces = {str(i["mount_namespace"]) for i in items if i.get("mount_namespace")}
        return cls(records_from_json(pids), spaces, work)

    def find(self) -> list[str]:
        found = [f"{r.name} (pid {r.pid})" for r in self.records if r.alive()]
        found += [f"pod process {pid}" for pid in pids_in_mount_namespaces(self.namespaces)]
        marker = str(self.work).encode()
        for entry in Path("/proc").glob("[0-9]*"):
            if int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes():
                    found.append(f"pid {entry.name}: {(entry / 'cmdline').read_bytes()[:80]!r}")
            except OSError:
                pass
        return found


def build_on_host(document: dict[str, Any], failure: str) -> None:
    """Build the environment into the node cache from this process, as the staging pod
    would: the same document, the same builder, the same key (checked against the one
    the pod's failure names).  For a machine whose HTTPS goes through a proxy with a CA
    of its own: the test cluster's pods get only PATH, HOME and LANG from the host
    (tests/kube/env.py), so uv there cannot reach PyPI."""
    spec = EnvironmentSpec.model_validate(document)
    if f"build {build_key(spec)[:12]}" not in failure:
        raise SystemExit(f"the pod built another environment than {build_key(spec)[:12]}")
    with tempfile.TemporaryDirectory() as links:
        builder = EnvironmentBuilder(Path(links), NODE_CACHE)
        built = builder.ensure(spec, lambda line: print(f"  host build: {line}", file=sys.stderr))
    print(f"built {built.python} into the node cache from the host", file=sys.stderr)


# --- load ------------------------------------------------------------------------------


def measure(url: str, connections: int, seconds: int, key: str) -> Figures:
    """wrk where installed, else the same closed loop with httpx."""
    headers = {"Authorization": f"Bearer {key}"}
    if shutil.which("wrk"):
        return wrk(url, connections, seconds, headers=headers)
    return asyncio.run(closed_loop(url, connections, seconds, headers))


async def closed_loop(url: str, connections: int, seconds: int, headers: dict[str, str]) -> Figures:
    """``connections`` clients, each sending its next request once the last is answered;
    2 s of warm-up, then ``seconds`` counted."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    body = IRIS_ROW.encode()
    headers = {**headers, "Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:

        async def loop(until: float, record: bool) -> None:
            nonlocal errors
            while (now := time.perf_counter()) < until:
                try:
                    answer = await client.post(url, content=body, headers=headers)
                    ok = answer.status_code < 400
                except httpx.HTTPError:
                    ok = False
                if record:
                    latencies.append(time.perf_counter() - now)
                    errors += not ok

        warm = time.perf_counter() + 2
        await asyncio.gather(*(loop(warm, False) for _ in range(connections)))
        started = time.perf_counter()
        await asyncio.gather(*(loop(started + seconds, True) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "rps": len(latencies) / elapsed,
        "p50": cuts[49] * 1000,
        "p99": cuts[98] * 1000,
        "errors": float(errors),
    }


@dataclass
class Reaction:
    event: float | None = None  # the scale-up decision (the service's events)
    ready: float | None = None  # a second replica Ready, as the control plane reads it
    served: float | None = None  # a client's first answer from another replica
    full: float | None = None  # the policy's count Ready


def autoscale(bench: Bench, kind: str, model: Model, ic: InferenceConfig, clients: int) -> Reaction:
    name = f"slow-{kind}"
    dc = AksWebservice.deploy_configuration(
        autoscale_enabled=True,
        autoscale_min_replicas=1,
        autoscale_max_replicas=MAX_REPLICAS,
        autoscale_target_utilization=70,
        autoscale_refresh_seconds=1,
        auth_enabled=False,
        cpu_cores=0.5,
        memory_gb=1,
    )
    bench.deploy(kind, name, model, ic, dc)
    uri = Webservice(bench.ws, name).scoring_uri
    first_pid = httpx.post(uri, content=b"{}", timeout=30, trust_env=False).json()
    target = min(MAX_REPLICAS, math.ceil(clients / 0.7 - 1e-9))
    result = Reaction()
    stop = threading.Event()
    wall_start = datetime.now(UTC)
    started = time.monotonic()

    def client() -> None:
        with httpx.Client(timeout=30, trust_env=False) as c:
            while not stop.is_set():
                try:
                    pid = c.post(uri, content=b"{}").json()
                except (httpx.HTTPError, ValueError):
                    continue
                if pid != first_pid and result.served is None:
                    result.served = time.monotonic() - started

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        while time.monotonic() - started < 90:
            ready = bench.ready(name)
            now = time.monotonic() - started
            if result.ready is None and ready > 1:
                result.ready = now
            if ready >= target:
                result.full = now
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    events = bench.ws.client.call("GET", f"/api/v1/services/{name}/events")["value"]
    ups = [e for e in events if e["toReplicas"] > e["fromReplicas"]]
    if ups:
        when = datetime.fromisoformat(ups[0]["time"])
        result.event = (when - wall_start).total_seconds()
    bench.delete(name)
    return result


# --- the run ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--clients", type=int, default=4, help="autoscale: closed-loop clients")
    parser.add_argument("--deploys", type=int, default=2, help="timed deploys per target")
    parser.add_argument("--purpose", default="DevTest", help="DevTest: 1 router pod")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelport-bench-k8s-"))
    cluster_dir, home = work / "cluster", work / "home"
    server: subprocess.Popen[bytes] | None = None
    cached_before = set(NODE_CACHE.iterdir()) if NODE_CACHE.is_dir() else set()
    began = time.monotonic()
    try:
        harness("start", str(cluster_dir))
        cluster_start = time.monotonic() - began
        server, config = start_server(home)
        results = measure_all(work, config, cluster_dir, args)
    finally:
        try:
            leftovers = clean_up(work, home, cluster_dir, server)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            forget_added(cached_before)
    report(args, cluster_start, results)
    print(f"\nLeft running after the clean-up: {', '.join(leftovers) or 'nothing'}")
    if leftovers:
        raise SystemExit(1)


def forget_added(cached_before: set[Path]) -> None:
    """Remove what this run added to the node cache (a build, its log and lock, uv's cache)."""
    now = set(NODE_CACHE.iterdir()) if NODE_CACHE.is_dir() else set()
    for added in sorted(now - cached_before):
        print(f"removing {added}: added to the node cache by this run", file=sys.stderr)
        if added.is_dir() and not added.is_symlink():
            shutil.rmtree(added, ignore_errors=True)
        else:
            added.unlink(missing_ok=True)


def measure_all(
    work: Path, config: dict[str, Any], cluster_dir: Path, args: argparse.Namespace
) -> Results:
    with Workspace(config["url"], config["token"]) as ws:
        kube = Client(KubeConfig.from_file(cluster_dir / "kubeconfig"), trust_env=False)
        bench = Bench(ws, attach(ws, cluster_dir / "kubeconfig", args.purpose), kube, work)
        try:
            return run(bench, args)
        finally:
            for name in list(bench.services):
                try:
                    bench.delete(name)
                except Exception as exc:  # the server and the cluster stop next anyway
                    print(f"deleting {name}: {exc}", file=sys.stderr)


def clean_up(
    work: Path, home: Path, cluster_dir: Path, server: subprocess.Popen[bytes] | None
) -> list[str]:
    """``modelport down``, ``kube-harness stop``; then what still runs of either."""
    if server is not None:
        env = {**os.environ, "MODELPORT_HOME": str(home)}
        down = [sys.executable, "-m", "modelport", "down"]
        subprocess.run(down, env=env, capture_output=True, check=False, timeout=120)
        server.wait(timeout=60)
    leftovers = Leftovers.of_cluster(cluster_dir, work) if cluster_dir.exists() else None
    harness("stop", str(cluster_dir))
    return leftovers.find() if leftovers else Leftovers([], set(), work).find()


@dataclass
class Results:
    deploys: dict[str, list[float]]
    reactions: dict[str, Reaction]
    throughput: list[tuple[int, dict[str, Figures]]]
    tool: str
    router_pods: int
    warmed_on_host: bool


def run(bench: Bench, args: argparse.Namespace) -> Results:
    model_dir, ic_file, _ = write_files(bench.work / "files")
    iris = Model.register(bench.ws, model_dir, "iris-classifier")
    ic = InferenceConfig.from_file(ic_file)
    two = AksWebservice.deploy_configuration(
        num_replicas=2, autoscale_enabled=False, cpu_cores=0.5, memory_gb=1
    )
    deploys: dict[str, list[float]] = {kind: [] for kind in KINDS}
    warmed_on_host = False
    for kind in KINDS:
        try:
            warm = bench.deploy(kind, f"warm-{kind}", iris, ic, two)
        except ModelportError as exc:
            if kind == "local" or "environment build failed" not in str(exc):
                raise
            print(f"the staging pod could not build the environment:\n{exc}", file=sys.stderr)
            build_on_host(json.loads(ic_file.read_text())["environment"], str(exc))
            bench.delete("warm-cluster")
            warmed_on_host = True
            warm = bench.deploy(kind, "warm-cluster", iris, ic, two)
        print(f"{kind}: warming deploy {warm:.1f} s", file=sys.stderr)
        bench.delete(f"warm-{kind}")
    for n in range(args.deploys):
        for kind in KINDS:
            deploys[kind].append(bench.deploy(kind, f"iris-{kind}-{n}", iris, ic, two))
            bench.delete(f"iris-{kind}-{n}")
    print(f"deploys: {deploys}", file=sys.stderr)

    (bench.work / "slow").mkdir()
    (bench.work / "slow" / "score.py").write_text(textwrap.dedent(SLOW))
    slow = InferenceConfig(entry_script="score.py", source_directory=bench.work / "slow")
    reactions = {kind: autoscale(bench, kind, iris, slow, args.clients) for kind in KINDS}
    print(f"reactions: {reactions}", file=sys.stderr)

    one = AksWebservice.deploy_configuration(
        num_replicas=1, autoscale_enabled=False, cpu_cores=0.5, memory_gb=1
    )
    urls: dict[str, str] = {}
    keys: dict[str, str] = {}
    for kind in KINDS:
        bench.deploy(kind, f"tp-{kind}", iris, ic, one)
        service = Webservice(bench.ws, f"tp-{kind}")
        urls[kind], keys[kind] = service.scoring_uri, service.get_keys()[0]
    pods = bench.router_pods()
    if not all(pods):
        raise SystemExit(f"a router pod has no address: {pods}")
    urls["pod"] = f"http://{pods[0]}:{ROUTER_POD_PORT}/api/v1/service/tp-cluster/score"
    keys["pod"] = keys["cluster"]
    rows = []
    for c in (int(x) for x in args.connections.split(",")):
        row = {path: measure(urls[path], c, args.seconds, keys[path]) for path in urls}
        print(f"{c} connections: {row}", file=sys.stderr)
        rows.append((c, row))
    tool = "wrk -t1" if shutil.which("wrk") else "httpx closed loop"
    return Results(deploys, reactions, rows, tool, len(pods), warmed_on_host)


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def report(args: argparse.Namespace, cluster_start: float, r: Results) -> None:
    print(
        f"## Kubernetes target ({date.today()}, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, cluster purpose {args.purpose}: "
        f"{r.router_pods} router pod(s))\n"
    )
    print(f"Test cluster started in {cluster_start:.1f} s.\n")
    if r.warmed_on_host:
        print(
            "The staging pod could not reach PyPI (see the notes), so the environment was built "
            "into the node cache from the host before the warm-up deploy.\n"
        )
    local, cluster = (r.deploys[k] for k in KINDS)
    print("| deploy to Healthy (iris, 2 replicas, warm environment cache) | local s | cluster s |")
    print("|---|---|---|")
    for n, (a, b) in enumerate(zip(local, cluster, strict=True), 1):
        print(f"| deploy {n} | {a:.2f} | {b:.2f} |")
    ratio = statistics.mean(cluster) / statistics.mean(local)
    print(
        f"| mean (cluster/local {ratio:.2f}x) | {statistics.mean(local):.2f} | "
        f"{statistics.mean(cluster):.2f} |\n"
    )
    target = min(MAX_REPLICAS, math.ceil(args.clients / 0.7 - 1e-9))
    print(
        f"Autoscale: {args.clients} closed-loop clients, run() ~50 ms, min 1 / max "
        f"{MAX_REPLICAS} / target 70 % / refresh 1 s; seconds after the load step:\n"
    )
    print("| step | local | cluster |\n|---|---|---|")
    steps = [
        ("scale-up event recorded", "event"),
        ("second replica Ready (control plane)", "ready"),
        ("first answer from a new replica", "served"),
        (f"policy target ({target} replicas) Ready", "full"),
    ]
    for label, attr in steps:
        a, b = (getattr(r.reactions[k], attr) for k in KINDS)
        print(f"| {label} | {seconds(a)} | {seconds(b)} |")
    print(
        f"\niris, one row per request, key auth, 1 replica, {r.tool}, {args.seconds} s after a "
        "2 s warm-up; cluster: through the load balancer address / straight to the router pod:\n"
    )
    print(
        "| conns | local req/s | p50 / p99 ms | cluster LB req/s | p50 / p99 ms | "
        "router pod req/s | p50 / p99 ms | LB/local | pod/local | LB added p50 ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c, row in r.throughput:
        lo, lb, pod = row["local"], row["cluster"], row["pod"]
        errors = int(lo["errors"] + lb["errors"] + pod["errors"])
        print(
            f"| {c} | {lo['rps']:.0f} | {lo['p50']:.2f} / {lo['p99']:.2f} | {lb['rps']:.0f} | "
            f"{lb['p50']:.2f} / {lb['p99']:.2f} | {pod['rps']:.0f} | "
            f"{pod['p50']:.2f} / {pod['p99']:.2f} | {lb['rps'] / lo['rps']:.2f}x | "
            f"{pod['rps'] / lo['rps']:.2f}x | {lb['p50'] - lo['p50']:+.2f} | {errors} |"
        )


if __name__ == "__main__":
    main()
