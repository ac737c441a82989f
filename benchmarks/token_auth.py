"""Token auth: what checking a scoring token costs the router next to a key, one run.

    python benchmarks/token_auth.py [--seconds 10] [--connections 8] [--rounds 3]

Two services of one no-op replica each (``replica_max_concurrent_requests`` 8, so the
router rather than the replica is what is measured), one with key auth and one with
token auth, on the same server; wrk (1 thread) sends the same body with the primary
key or with one token (a client reuses its token until refresh_after, so after the
first request the router answers from its cache of verified tokens).  Rounds alternate
which service goes first and each token figure is compared with the key figure of
its own round: throughput on this machine drifts by tens of percent over a minute.
Router CPU per request (from /proc, this run's router processes only, over the
router's own counts) is the steadier measure.  The uncached check (signature,
claims), the cached one and the key check are also timed alone, in-process.  Needs wrk.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import timeit
from datetime import date
from pathlib import Path

from _common import scripts_folder, start_server, wrk, wrk_arguments
from endpoint_split import answered

from modelport import AksWebservice, InferenceConfig, Model, Workspace

NOOP = """
    def init():
        pass

    def run(raw_data):
        return raw_data
"""
KEY, TOKEN = "key auth", "token auth"


def router_cpu_seconds(work: Path) -> float:
    """CPU time (user + system) of this run's router processes: those whose environment
    names this run's folder (other routers on a shared machine are not counted)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"modelport.router" not in (proc / "cmdline").read_bytes():
                continue
            if str(work).encode() not in (proc / "environ").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def check_us() -> tuple[float, float, float]:
    """The router's checks timed alone: a token seen for the first time (EdDSA
    signature and claims), one from the cache of verified tokens, and a key."""
    import hashlib

    from modelport.router.auth import TokenKeys, Verifier, key_refusal
    from modelport.store.signing import mint, new_signing_key

    key = new_signing_key()
    keys = TokenKeys.from_document({"issuer": "bench", "keys": [key.public_jwk]})
    tokens = [
        f"Bearer {mint(key, 'bench', 'svc', 'admin', 3600).access_token}".encode()
        for _ in range(2000)
    ]
    verifier = Verifier(keys, cache_size=len(tokens) + 1)
    fresh = min(
        timeit.repeat(
            lambda: [Verifier(keys).token_refusal(t, "svc") for t in tokens[:200]],
            number=1,
            repeat=5,
        )
    )
    for t in tokens:
        verifier.token_refusal(t, "svc")
    cached = min(
        timeit.repeat(
            lambda: [verifier.token_refusal(t, "svc") for t in tokens], number=1, repeat=5
        )
    )
    digests = (hashlib.sha256(b"k" * 43).digest(), hashlib.sha256(b"j" * 43).digest())
    header = b"Bearer " + b"k" * 43
    keyed = min(timeit.repeat(lambda: key_refusal(header, digests), number=100_000, repeat=5))
    return fresh / 200 * 1e6, cached / len(tokens) * 1e6, keyed / 100_000 * 1e6


def main() -> None:
    args = wrk_arguments(seconds=10)
    work = scripts_folder({"noop": NOOP})
    (work / "model.txt").write_text("none")
    server, config = start_server(work / "home")
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    ratios: dict[int, list[float]] = {}
    costs: dict[int, list[float]] = {}
    try:
        with Workspace(config["url"], config["token"]) as ws:
            model = Model.register(ws, work / "model.txt", "noop")
            ic = InferenceConfig(entry_script="score.py", source_directory=work / "noop")
            common = {"num_replicas": 1, "autoscale_enabled": False}
            common["replica_max_concurrent_requests"] = 8
            keyed = Model.deploy(
                ws, "keyed", [model], ic, AksWebservice.deploy_configuration(**common)
            )
            tokened = Model.deploy(
                ws,
                "tokened",
                [model],
                ic,
                AksWebservice.deploy_configuration(token_auth_enabled=True, **common),
            )
            keyed.wait_for_deployment()
            tokened.wait_for_deployment()
            targets = {
                KEY: (keyed.scoring_uri, keyed.get_keys()[0]),
                TOKEN: (tokened.scoring_uri, tokened.get_access_token().access_token),
            }
            for round_ in range(args.rounds):
                order = [KEY, TOKEN] if round_ % 2 == 0 else [TOKEN, KEY]
                for c in (int(x) for x in args.connections.split(",")):
                    for what in order:
                        url, credential = targets[what]
                        name = url.rsplit("/", 2)[-2]
                        cpu, count = router_cpu_seconds(work), answered(config, name)
                        got = wrk(
                            url, c, args.seconds, headers={"Authorization": f"Bearer {credential}"}
                        )
                        served = answered(config, name) - count
                        got["cpu_us"] = (router_cpu_seconds(work) - cpu) / max(served, 1) * 1e6
                        rows.setdefault((what, c), []).append(got)
                    mine, base = rows[(TOKEN, c)][-1], rows[(KEY, c)][-1]
                    ratios.setdefault(c, []).append(mine["rps"] / base["rps"])
                    costs.setdefault(c, []).append(mine["cpu_us"] / base["cpu_us"])
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    fresh_us, cached_us, key_us = check_us()
    print(
        f"## Token auth vs key auth ({date.today()}, {platform.node()}, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}, wrk -t1, {args.seconds} s after 2 s "
        f"warm-up, {args.rounds} paired rounds, no-op script, 1 replica taking 8 at once)\n"
    )
    print("| auth | conns | req/s (median) | router CPU µs/request | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for (what, c), got in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(
            f"| {what} | {c} | {statistics.median(g['rps'] for g in got):.0f} "
            f"| {statistics.median(g['cpu_us'] for g in got):.0f} "
            f"| {statistics.median(g['p50'] for g in got):.2f} "
            f"| {statistics.median(g['p99'] for g in got):.2f} "
            f"| {sum(g['errors'] for g in got):.0f} |"
        )
    print()
    for c in sorted(ratios):
        r, k = ratios[c], costs[c]
        print(
            f"- {c} connections: token/key throughput {statistics.median(r):.3f} "
            f"(rounds {min(r):.3f}-{max(r):.3f}); router CPU per request "
            f"{statistics.median(k):.3f}x (rounds {min(k):.3f}-{max(k):.3f})"
        )
    print(
        f"- the check alone: {fresh_us:.0f} µs for a token seen the first time (EdDSA "
        f"signature, claims), {cached_us:.2f} µs from the cache; a key: {key_us:.2f} µs"
    )


if __name__ == "__main__":
    main()
