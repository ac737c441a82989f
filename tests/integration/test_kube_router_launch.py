"""The router container's entry point, run as its manifest says."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import httpx

from modelport.compute.kubernetes import install
from modelport.compute.kubernetes.settings import ClusterSettings
from tests.conftest import wait_for

TOKEN = "r" * 43


def test_the_router_listens_on_the_pod_address() -> None:
    container = install.router_container(ClusterSettings("ns", "w", "http://cp"))
    ip = f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    for entry in container["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]
            env[entry["name"]] = ip if "fieldRef" in ref else TOKEN
        else:
            env[entry["name"]] = entry["value"].replace("$(POD_IP)", ip)
    env.pop("MODELPORT_ROUTER_TABLE_DIR")  # no table yet: the router answers 503
    command = [sys.executable, *container["command"][1:]]
    router = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        admin = f"http://{ip}:{install.ROUTER_ADMIN_PORT}/healthz"

        def healthy() -> bool:
            assert router.poll() is None, router.stderr.read() if router.stderr else ""
            try:
                return httpx.get(admin, headers={"Authorization": f"Bearer {TOKEN}"}).is_success
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout_s=30, what="the router's admin port")
        scoring = httpx.post(f"http://{ip}:{install.ROUTER_PORT}/api/v1/service/x/score")
        assert scoring.status_code in (404, 503)
        assert httpx.get(admin).status_code == 401
    finally:
        router.send_signal(signal.SIGTERM)
        try:
            router.wait(timeout=30)
        finally:
            if router.poll() is None:
                router.kill()
                router.wait()


def test_a_missing_setting_is_named() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    done = subprocess.run(
        [sys.executable, "-m", install.LAUNCH_MODULE], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "router launch: MODELPORT_ROUTER_HOST is not set"
