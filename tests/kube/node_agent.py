"""The node agent: the role kwok plays upstream, except that pods run for real.

It registers Nodes (cpu, memory, pods and ``nvidia.com/gpu`` capacity), keeps their
heartbeats and Leases, and runs every pod the scheduler binds to them as processes
(``pods.PodRunner``) on an address of its own, 127.0.<node index + 1>.N. It serves
container logs to the API server (``logs_server``) and gives LoadBalancer Services an
address (``loadbalancer``). Every watch starts over after a failure, so an API server
restart is survived. On SIGTERM it stops every pod it runs, gracefully, and exits.

    python -m tests.kube.node_agent --kubeconfig FILE --state DIR --api-port P
        --kubelet-port Q --tls-cert CRT --tls-key KEY --node NAME:cpu=4,memory=16Gi ...
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Pod

from tests.kube.addresses import AddressPool
from tests.kube.containers import ProcessRegistry
from tests.kube.informer import keep, list_and_watch
from tests.kube.loadbalancer import LoadBalancers
from tests.kube.logs_server import LogsServer
from tests.kube.nodes import NodeKeeper, NodeSpec
from tests.kube.pods import DEFAULT_GRACE_S, Backoff, NodeHost, PodRunner

log = logging.getLogger("node-agent")
FINISHED = ("Succeeded", "Failed")


class NodeAgent:
    def __init__(self, host: NodeHost, nodes: list[NodeSpec], shutdown_grace_s: float) -> None:
        self.host = host
        self.nodes = {node.name: node for node in nodes}
        self.pools = {node.name: AddressPool(node.pod_prefix) for node in nodes}
        self.shutdown_grace_s = shutdown_grace_s
        self.runners: dict[str, PodRunner] = {}  # by pod UID
        self.by_name: dict[tuple[str, str], PodRunner] = {}
        self.deleting: dict[str, asyncio.Task[None]] = {}

    def lookup(self, namespace: str, name: str) -> PodRunner | None:
        return self.by_name.get((namespace, name))

    async def watch_pods(self) -> None:
        await list_and_watch(self.host.client, Pod, self._listed, self._event)

    async def _listed(self, pods: list[Pod]) -> None:
        present = {p.metadata.uid for p in pods if p.metadata}
        for uid, runner in list(self.runners.items()):
            if uid not in present and uid not in self.deleting:
                await self._finish(runner, grace_s=0)  # deleted while the watch was down
        for pod in pods:
            await self._event("ADDED", pod)

    async def _event(self, kind: str, pod: Pod) -> None:
        meta, spec = pod.metadata, pod.spec
        if meta is None or spec is None or spec.nodeName not in self.nodes:
            return
        uid = meta.uid or ""
        runner = self.runners.get(uid)
        if kind == "DELETED":  # gone at once (a forced deletion): stop what still runs
            if runner is not None and uid not in self.deleting:
                await self._finish(runner, _grace(pod))
        elif meta.deletionTimestamp is not None:
            if uid not in self.deleting:
                self.deleting[uid] = asyncio.create_task(self._delete(pod, runner))
        elif runner is None and (pod.status is None or pod.status.phase not in FINISHED):
            self._start(pod)

    def _start(self, pod: Pod) -> None:
        assert pod.metadata is not None and pod.spec is not None
        node = pod.spec.nodeName or ""
        ip = "127.0.0.1" if pod.spec.hostNetwork else self.pools[node].acquire()
        runner = PodRunner(self.host, pod, ip)
        self.runners[runner.uid] = runner
        self.by_name[(runner.namespace, runner.name)] = runner
        log.info("pod %s/%s on %s at %s", runner.namespace, runner.name, node, ip)
        runner.start()

    async def _delete(self, pod: Pod, runner: PodRunner | None) -> None:
        """Stop the pod within its grace period, then delete it for good, as a kubelet does."""
        assert pod.metadata is not None
        name, namespace = pod.metadata.name or "", pod.metadata.namespace or ""
        try:
            if runner is not None:
                await self._finish(runner, _grace(pod))
            current = await self.host.client.get(Pod, name, namespace=namespace)
            if current.metadata and current.metadata.uid == pod.metadata.uid:
                await self.host.client.delete(Pod, name, namespace=namespace, grace_period=0)
        except ApiError as exc:
            if exc.status.code != 404:
                log.warning("deleting pod %s/%s: %s", namespace, name, exc)
        except httpx2.HTTPError as exc:
            log.warning("deleting pod %s/%s: %s", namespace, name, exc)
        finally:
            self.deleting.pop(pod.metadata.uid or "", None)

    async def _finish(self, runner: PodRunner, grace_s: float) -> None:
        await runner.stop(grace_s)
        runner.forget()
        self.runners.pop(runner.uid, None)
        if self.by_name.get((runner.namespace, runner.name)) is runner:
            del self.by_name[(runner.namespace, runner.name)]
        node = runner.facts.node_name
        if runner.ip != "127.0.0.1":
            self.pools[node].release(runner.ip)

    async def shutdown(self) -> None:
        for task in self.deleting.values():
            task.cancel()
        runners = list(self.runners.values())
        grace = self.shutdown_grace_s
        await asyncio.gather(
            *(
                self._finish(r, min(grace, r.spec.terminationGracePeriodSeconds or grace))
                for r in runners
            ),
            return_exceptions=True,
        )
        for pool in self.pools.values():
            pool.release_all()


def _grace(pod: Pod) -> float:
    assert pod.metadata is not None and pod.spec is not None
    if pod.metadata.deletionGracePeriodSeconds is not None:
        return float(pod.metadata.deletionGracePeriodSeconds)
    if pod.spec.terminationGracePeriodSeconds is not None:
        return float(pod.spec.terminationGracePeriodSeconds)
    return DEFAULT_GRACE_S


async def serve(args: argparse.Namespace) -> None:
    nodes = [NodeSpec.parse(text, i) for i, text in enumerate(args.node)]
    client = AsyncClient(KubeConfig.from_file(args.kubeconfig), trust_env=False)
    args.state.mkdir(parents=True, exist_ok=True)
    host = NodeHost(
        client=client,
        state=args.state,
        api_host="127.0.0.1",
        api_port=args.api_port,
        registry=ProcessRegistry(args.state / "processes.json"),
        backoff=Backoff(args.backoff_base, args.backoff_max),
    )
    agent = NodeAgent(host, nodes, args.shutdown_grace)
    logs = LogsServer(agent.lookup, args.kubelet_port, args.tls_cert, args.tls_key)
    balancers = LoadBalancers(client)
    await logs.start()
    jobs = [keep(f"node {n.name}", NodeKeeper(client, n, args.kubelet_port).keep) for n in nodes]
    jobs += [
        keep("pod watch", agent.watch_pods),
        keep("service watch", balancers.watch_services),
        keep("endpoint slice watch", balancers.watch_endpoint_slices),
    ]
    tasks = [asyncio.create_task(job) for job in jobs]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("node agent up: %s", ", ".join(n.name for n in nodes))
    await stop.wait()
    log.info("stopping: %d pods", len(agent.runners))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await agent.shutdown()
    balancers.close()
    await logs.close()
    await client.close()
    log.info("node agent stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node_agent", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True, help="folder for pods' files")
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--kubelet-port", type=int, required=True)
    parser.add_argument("--tls-cert", type=Path, required=True)
    parser.add_argument("--tls-key", type=Path, required=True)
    parser.add_argument("--node", action="append", required=True)
    parser.add_argument("--backoff-base", type=float, default=10.0)
    parser.add_argument("--backoff-max", type=float, default=300.0)
    parser.add_argument("--shutdown-grace", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # not a line per request
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
