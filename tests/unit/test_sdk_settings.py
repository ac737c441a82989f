"""Merging a service's settings with the changes an update asks for."""

from __future__ import annotations

from modelport.sdk.webservice import merge_settings


def test_update_settings_switch_between_fixed_and_autoscaled_counts() -> None:
    autoscaled = {"autoscale_enabled": True, "autoscale_max_replicas": 4, "cpu_cores": 1.0}
    fixed = merge_settings(autoscaled, {"num_replicas": 3})
    assert fixed == {"autoscale_enabled": False, "num_replicas": 3, "cpu_cores": 1.0}
    back = merge_settings(fixed, {"autoscale_enabled": True, "autoscale_min_replicas": 2})
    assert back == {"autoscale_enabled": True, "autoscale_min_replicas": 2, "cpu_cores": 1.0}
    assert merge_settings(fixed, {"cpu_cores": 2.0})["num_replicas"] == 3
