"""OpenTelemetry traces for services with ``enable_app_insights`` (v1's App Insights).

Spans go over OTLP/HTTP where the standard variables say
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, and the
SDK's others: headers, batch delays).  The router and each replica set up a tracer
of their own on first use, as the global provider, so a ``score.py`` that makes spans
with ``opentelemetry.trace`` joins the request's trace.  W3C ``traceparent`` carries
the context from client to router to replica.  Nothing is imported or exported
unless a service asks for traces and an endpoint is set.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("modelport.tracing")

SWITCH = "MODELPORT_TRACING"  # "1" in a replica of a service with enable_app_insights
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
NOT_EXPORTED = "OTEL_EXPORTER_OTLP_ENDPOINT is not set for the server"
MISSING = (
    "traces: opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http are not "
    "installed here; add them to the environment to send this process's spans"
)

_lock = threading.Lock()
_tracer: Any = None
_ready = False


def exporting(environ: Mapping[str, str] | None = None) -> bool:
    """Whether an OTLP endpoint is configured for this process."""
    env = os.environ if environ is None else environ
    return any(env.get(v) for v in ENDPOINT_VARIABLES)


def why_not_exported(environ: dict[str, str] | None = None) -> str | None:
    """A target's ``traces`` (spec/support.py): None where spans are exported."""
    return None if exporting(environ) else NOT_EXPORTED


def pod_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``OTEL_*`` variables a cluster's pods get to send their spans where this
    process sends its own (local replicas inherit them)."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith("OTEL_")}


def why_not_in_pods(environ: Mapping[str, str] | None = None) -> str | None:
    """A cluster target's ``traces``: None where its pods can export as this process
    does.  Headers (an exporter's credentials) are not written into pod specs."""
    env = os.environ if environ is None else environ
    if not exporting(env):
        return NOT_EXPORTED
    headers = sorted(k for k in pod_settings(env) if k.endswith("_HEADERS"))
    if headers:
        return (
            f"{', '.join(headers)} would be written into the cluster's pod specs, which are "
            "no place for an exporter's credentials: a cluster's pods export no spans"
        )
    return None


def tracer(service_name: str) -> Any:
    """This process's tracer, set up once; None without an endpoint or the SDK."""
    global _tracer, _ready
    if _ready:
        return _tracer
    with _lock:
        if not _ready:
            _tracer = _set_up(service_name) if exporting() else None
            _ready = True
    return _tracer


def _set_up(service_name: str) -> Any:
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(MISSING)
        return None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)  # flushes at exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return trace.get_tracer("modelport")


def extract(headers: Iterable[tuple[bytes, bytes]]) -> Any:
    """The context a request's ``traceparent``/``tracestate`` headers carry."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in headers
        if k in (b"traceparent", b"tracestate")
    }
    return TraceContextTextMapPropagator().extract(carrier)


def inject() -> list[tuple[bytes, bytes]]:
    """The current span's context as ``traceparent``/``tracestate`` headers."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return [(k.encode(), v.encode()) for k, v in carrier.items()]
