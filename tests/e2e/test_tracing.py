"""enable_app_insights as OpenTelemetry: one trace from the client through the router,
the replica and run() into a score.py's own span, received by a real OTLP endpoint,
on this machine and from a cluster's pods."""

from __future__ import annotations

import gzip
import secrets
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from modelport import InferenceConfig, Model, Workspace
from tests.conftest import ServerProcess, wait_for
from tests.e2e.clusters import attached
from tests.e2e.test_services import fixed, post

TRACED = """
    from opentelemetry import trace

    def init():
        pass

    def run(raw):
        with trace.get_tracer("score").start_as_current_span("user-work"):
            return {"ok": True}
"""


class Receiver:
    """An OTLP/HTTP traces endpoint: decodes each export with the official protos."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    with self.lock:
                        self.spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "trace": span.trace_id.hex(),
                                "id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "attributes": {a.key: a.value for a in span.attributes},
                            }
                        )

    def of_trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["trace"] == trace_id]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(timeout=10)


def traced_script(ws: Workspace, tmp_path: Path) -> tuple[Model, InferenceConfig]:
    """A model and the TRACED entry script, for a service that makes a span of its own."""
    (tmp_path / "w.json").write_text('{"scale": 10}')
    model = Model.register(ws, tmp_path / "w.json", "scaler")
    folder = tmp_path / "traced"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(TRACED))
    return model, InferenceConfig(entry_script="score.py", source_directory=folder)


def traced_request(traced: Any) -> tuple[str, str]:
    """One scoring request to ``traced`` carrying a client's traceparent: its trace and
    client span ids."""
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    answer = httpx.post(
        traced.scoring_uri,
        json={},
        headers={
            "traceparent": f"00-{trace_id}-{client_span}-01",
            "Authorization": f"Bearer {traced.get_keys()[0]}",
        },
    )
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    return trace_id, client_span


def one_chain(receiver: Receiver, trace_id: str, client_span: str) -> dict[str, Any]:
    """The 4 spans of service ``traced``'s request, each the child of the one before:
    client → router → replica → run() → the user's span; the router's span."""
    wait_for(lambda: len(receiver.of_trace(trace_id)) == 4, what="4 spans of the trace")
    spans = {s["name"]: s for s in receiver.of_trace(trace_id)}
    router = spans["POST score traced"]
    replica, run, user = spans["POST /score"], spans["run()"], spans["user-work"]
    assert router["service"] == "modelport-router" and router["parent"] == client_span
    assert replica["service"] == "traced" and replica["parent"] == router["id"]
    assert run["parent"] == replica["id"] and user["parent"] == run["id"]
    return router


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    try:
        yield found
    finally:
        found.close()


def test_one_trace_from_client_to_the_user_span_and_none_for_others(
    receiver: Receiver, tmp_path: Path
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    server = ServerProcess(tmp_path / "traced-home", env=env)
    try:
        with Workspace.from_config(server.home) as ws:
            model, ic = traced_script(ws, tmp_path)
            traced = Model.deploy(ws, "traced", [model], ic, fixed(1, enable_app_insights=True))
            quiet = Model.deploy(ws, "quiet", [model], ic, fixed(1))
            traced.wait_for_deployment()
            quiet.wait_for_deployment()
            assert not [w for w in traced.warnings if "appInsightsEnabled" in w]
            quiet_trace = secrets.token_hex(16)
            headers = {"traceparent": f"00-{quiet_trace}-{secrets.token_hex(8)}-01"}
            key = quiet.get_keys()[0]
            answer = httpx.post(
                quiet.scoring_uri,
                json={},
                headers={**headers, "Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 200
            trace_id, client_span = traced_request(traced)
            assert post(traced, {}).status_code == 401
            router = one_chain(receiver, trace_id, client_span)
            assert router["attributes"]["http.response.status_code"].int_value == 200
            assert receiver.of_trace(quiet_trace) == []  # quiet has no traces
    finally:
        server.stop()


def test_a_clusters_router_and_replica_pods_send_their_spans_of_one_trace(
    receiver: Receiver, tmp_path: Path, kube_cluster: Any
) -> None:
    """On Kubernetes the pods get the control plane's OTEL_* settings: the router pod's
    span and the replica pod's spans join the client's trace."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    server = ServerProcess(tmp_path / "traced-home", env=env)
    try:
        with attached(server, kube_cluster) as cluster, Workspace.from_config(server.home) as ws:
            model, ic = traced_script(ws, tmp_path)
            config = fixed(1, enable_app_insights=True)
            traced = Model.deploy(ws, "traced", [model], ic, config, cluster.target)
            traced.wait_for_deployment()
            assert not [w for w in traced.warnings if "appInsightsEnabled" in w]
            trace_id, client_span = traced_request(traced)
            one_chain(receiver, trace_id, client_span)
            traced.delete()
    finally:
        server.stop()
