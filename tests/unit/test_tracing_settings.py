"""Where spans go from a cluster's pods: the control plane's OTEL_* settings, unless
they carry an exporter's credentials (headers), which pod specs must not hold."""

from __future__ import annotations

from modelport import tracing


def test_pods_get_the_otel_settings_of_the_control_plane() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "MODELPORT_HOME": "/srv/ws",
        "PATH": "/usr/bin",
    }
    assert tracing.why_not_in_pods(env) is None
    assert tracing.pod_settings(env) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def test_no_endpoint_or_headers_keep_the_pods_quiet_and_say_why() -> None:
    assert tracing.why_not_in_pods({"PATH": "/usr/bin"}) == tracing.NOT_EXPORTED
    with_headers = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://saas/v1/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret",
    }
    why = tracing.why_not_in_pods(with_headers)
    assert why is not None and why.startswith("OTEL_EXPORTER_OTLP_HEADERS would be written")
    assert "secret" not in why
