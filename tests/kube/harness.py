"""Start and stop a test cluster: ``scripts/kube-harness start DIR`` / ``stop DIR``.

``start`` launches etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the
node agent, each detached in a session of its own, on loopback ports picked free, and
returns once the API server answers, the controllers and scheduler are healthy and every
Node is Ready. It leaves in DIR:

    kubeconfig      context ``harness``: https://127.0.0.1:PORT, a static admin token
    cluster.json    server URL, token, ports, Node names (what the test fixture reads)
    pids.json       every process started, with its start time (``stop`` reads it)
    *.log           one log per process; pods' logs and volumes are under agent/

``stop`` sends SIGTERM to each process group (the node agent first: it stops every pod it
runs), waits with a deadline, SIGKILLs stragglers and then any process left in a pod's
mount namespace. Running it twice, or on a folder whose cluster died, is harmless.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.kube import pki
from tests.kube.processes import (
    ProcessRecord,
    kill_mount_namespaces,
    records_from_json,
    records_to_json,
    terminate,
    write_json,
)

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = "harness"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_NODES = (
    "node-0:cpu=4,memory=16Gi,pods=110,nvidia.com/gpu=0",
    "node-1:cpu=8,memory=32Gi,pods=110,nvidia.com/gpu=4",
)
STOP_ORDER = ("node-agent", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


class HarnessError(Exception):
    pass


class Layout:
    """Where everything of one cluster lives inside DIR."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder.resolve()
        self.pki = self.dir / "pki"
        self.etcd_data = self.dir / "etcd"
        self.agent = self.dir / "agent"
        self.kubeconfig = self.dir / "kubeconfig"
        self.cluster = self.dir / "cluster.json"
        self.pids = self.dir / "pids.json"
        self.tokens = self.pki / "tokens.csv"

    def log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def records(self) -> list[ProcessRecord]:
        try:
            return records_from_json(json.loads(self.pids.read_text())["processes"])
        except FileNotFoundError:
            return []

    def agent_processes(self) -> tuple[list[ProcessRecord], set[str]]:
        """The container runs the node agent said were live, and their mount namespaces."""
        try:
            items = json.loads((self.agent / "processes.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return [], set()
        records = [
            ProcessRecord("container", int(i["pid"]), int(i["start_time"]))
            for i in items
            if i.get("start_time")
        ]
        return records, {str(i["mount_namespace"]) for i in items if i.get("mount_namespace")}


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Api:
    """Just enough of the API server for the readiness checks, with the standard library."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server
        self.token = token
        # The harness's own CA is not in the trust store; this is loopback only.
        self._tls = ssl._create_unverified_context()

    def get(self, url: str, auth: bool = True) -> tuple[int, Any]:
        if url.startswith("/"):
            url = self.server + url
        request = urllib.request.Request(url)
        if auth:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=5, context=self._tls) as answer:
                body = answer.read()
                status = answer.status
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ssl.SSLError):
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def ok(self, url: str, auth: bool = True) -> bool:
        return self.get(url, auth)[0] == 200

    def nodes_ready(self, names: list[str]) -> bool:
        status, body = self.get("/api/v1/nodes")
        if status != 200:
            return False
        ready = {
            node["metadata"]["name"]
            for node in body["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
            and not any(
                t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints", [])
            )
        }
        return set(names) <= ready

    def default_token(self) -> bool:
        """The default ServiceAccount has its token: pods can be created in ``default``."""
        status, body = self.get("/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200 and bool(body.get("secrets"))


class Launcher:
    """Starts detached processes, records them in pids.json, and notices early deaths."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.records: list[ProcessRecord] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with self.layout.log(name).open("ab") as log:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.layout.dir,
                env=env,
            )
        self.children[name] = child
        self.records.append(ProcessRecord.of(name, child.pid))
        write_json(self.layout.pids, {"processes": records_to_json(self.records)})

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            for name, child in self.children.items():
                if child.poll() is not None:
                    tail = self.layout.log(name).read_text(errors="replace")[-3000:]
                    raise HarnessError(f"{name} exited with {child.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise HarnessError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.1)


def node_names(specs: list[str]) -> list[str]:
    return [spec.split(":", 1)[0] for spec in specs]


def write_kubeconfig(layout: Layout, server: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": CONTEXT,
    }
    layout.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
    layout.kubeconfig.chmod(0o600)


def etcd_argv(layout: Layout, client: int, peer: int) -> list[str]:
    return [
        "etcd",
        "--name=harness",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=harness=http://127.0.0.1:{peer}",
    ]


def apiserver_argv(bin_dir: Path, layout: Layout, etcd: int, port: int) -> list[str]:
    p = layout.pki
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        "--insecure-port=0",
        f"--cert-dir={p}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--token-auth-file={layout.tokens}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        # Nodes are reached at their InternalIP (127.0.0.1) for pod logs; with no
        # --kubelet-certificate-authority the API server does not verify the node agent.
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
    ]


def controller_manager_argv(bin_dir: Path, layout: Layout, port: int) -> list[str]:
    p = layout.pki
    kubeconfig = str(layout.kubeconfig)
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--port=0",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={p / 'controller-manager'}",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        "--use-service-account-credentials=false",
        "--controllers=*",
        # Notice a Node's Ready status within a second (lifts the not-ready taint).
        "--node-monitor-period=1s",
        "--profiling=false",
    ]


def scheduler_argv(bin_dir: Path, layout: Layout, port: int) -> list[str]:
    kubeconfig = str(layout.kubeconfig)
    return [
        str(bin_dir / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--port=0",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={layout.pki / 'scheduler'}",
        "--profiling=false",
    ]


def agent_argv(layout: Layout, nodes: list[str], api_port: int, kubelet_port: int) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "tests.kube.node_agent",
        f"--kubeconfig={layout.kubeconfig}",
        f"--state={layout.agent}",
        f"--api-port={api_port}",
        f"--kubelet-port={kubelet_port}",
        f"--tls-cert={layout.pki / 'kubelet.crt'}",
        f"--tls-key={layout.pki / 'kubelet.key'}",
    ]
    return argv + [f"--node={spec}" for spec in nodes]


def make_pki(layout: Layout, token: str) -> None:
    layout.pki.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca(layout.pki)
    pki.make_serving_cert(
        layout.pki,
        "apiserver",
        ca,
        ips=["127.0.0.1", "10.96.0.1"],
        dns=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    )
    pki.make_serving_cert(layout.pki, "kubelet", ca, ips=["127.0.0.1"], dns=["localhost"])
    pki.make_service_account_keys(layout.pki)
    layout.tokens.write_text(f'{token},admin,admin-uid,"system:masters"\n')
    layout.tokens.chmod(0o600)


def start(folder: Path, bin_dir: Path, nodes: list[str], timeout_s: float) -> None:
    began = time.monotonic()
    layout = Layout(folder)
    if any(r.alive() for r in layout.records()):
        raise HarnessError(f"a cluster started from {layout.dir} is running: stop it first")
    for stale in (layout.etcd_data, layout.agent, layout.pki):
        shutil.rmtree(stale, ignore_errors=True)
    layout.dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    make_pki(layout, token)
    etcd_client, etcd_peer, api_port, cm_port, sched_port, kubelet_port = free_ports(6)
    server = f"https://127.0.0.1:{api_port}"
    api = Api(server, token)
    launcher = Launcher(layout)
    try:
        launcher.spawn("etcd", etcd_argv(layout, etcd_client, etcd_peer))
        launcher.spawn("kube-apiserver", apiserver_argv(bin_dir, layout, etcd_client, api_port))
        launcher.wait_for(lambda: api.ok("/readyz"), "the API server's /readyz", timeout_s)
        write_kubeconfig(layout, server, token)
        launcher.spawn("kube-controller-manager", controller_manager_argv(bin_dir, layout, cm_port))
        launcher.spawn("kube-scheduler", scheduler_argv(bin_dir, layout, sched_port))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        launcher.spawn("node-agent", agent_argv(layout, nodes, api_port, kubelet_port), env)
        for what, port in (("kube-controller-manager", cm_port), ("kube-scheduler", sched_port)):
            healthy = functools.partial(api.ok, f"https://127.0.0.1:{port}/healthz", auth=False)
            launcher.wait_for(healthy, what, timeout_s)
        names = node_names(nodes)
        launcher.wait_for(lambda: api.nodes_ready(names), f"Nodes {names} Ready", timeout_s)
        launcher.wait_for(api.default_token, "the default ServiceAccount's token", timeout_s)
    except BaseException:
        stop(folder, timeout_s=10)
        raise
    write_json(
        layout.cluster,
        {
            "server": server,
            "token": token,
            "kubeconfig": str(layout.kubeconfig),
            "context": CONTEXT,
            "ca": str(layout.pki / "ca.crt"),
            "nodes": names,
            "ports": {
                "apiserver": api_port,
                "etcd": etcd_client,
                "controller-manager": cm_port,
                "scheduler": sched_port,
                "kubelet": kubelet_port,
            },
        },
    )
    print(
        f"kube-harness: cluster ready in {time.monotonic() - began:.1f} s at {server}; "
        f"kubeconfig {layout.kubeconfig}",
        flush=True,
    )


def stop(folder: Path, timeout_s: float) -> list[str]:
    """Stop what ``start`` started; the names of processes that needed SIGKILL."""
    layout = Layout(folder)
    records = layout.records()
    order = {name: i for i, name in enumerate(STOP_ORDER)}
    killed: list[str] = []
    # The node agent first, alone: on SIGTERM it stops its pods gracefully.
    for record in sorted(records, key=lambda r: order.get(r.name, -1)):
        killed += [r.name for r in terminate([record], timeout_s)]
    # Whatever a pod left behind (or everything, if the agent was killed).
    containers, namespaces = layout.agent_processes()
    live = [r for r in containers if r.alive()]
    for record in live:
        record.signal(signal.SIGKILL)
    leftovers = {r.pid for r in live} | set(kill_mount_namespaces(namespaces))
    killed += [f"pod process {pid}" for pid in sorted(leftovers)]
    survivors = [r for r in records if r.alive()]
    if survivors:
        raise HarnessError(f"still running after stop: {survivors}")
    return killed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kube-harness")
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start a cluster; return once it is ready")
    start_cmd.add_argument("dir", type=Path)
    start_cmd.add_argument("--bin", type=Path, required=True, help="folder of the kube-* binaries")
    start_cmd.add_argument(
        "--node",
        action="append",
        help="NAME:cpu=4,memory=16Gi,pods=110,nvidia.com/gpu=0 (repeat; default: two Nodes)",
    )
    start_cmd.add_argument("--timeout", type=float, default=120.0)
    stop_cmd = commands.add_parser("stop", help="stop the cluster started from DIR")
    stop_cmd.add_argument("dir", type=Path)
    stop_cmd.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            start(args.dir, args.bin, args.node or list(DEFAULT_NODES), args.timeout)
        else:
            killed = stop(args.dir, args.timeout)
            if killed:
                print(f"kube-harness: had to kill {', '.join(killed)}", file=sys.stderr)
    except HarnessError as exc:
        print(f"kube-harness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
