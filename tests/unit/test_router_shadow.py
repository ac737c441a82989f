"""Shadow versions: the exact share of copies, the bound on copies in flight, and the
comparison of a shadow's answer with the live one (pure)."""

from __future__ import annotations

import json

import pytest

from modelport.compute.shares import merge_stats
from modelport.router.shadow import (
    InFlight,
    Shadow,
    ShadowCounters,
    agree,
    due,
    per_million,
    same,
    settle,
)
from modelport.router.stats import render, snapshot
from modelport.router.table import RouteTable, build_table
from tests.prom import value

TOL = 1e-6


def _ok(value: object) -> tuple[int, bytes]:
    return 200, json.dumps(value).encode()


def test_equal_json_agrees_whatever_its_spacing_and_key_order() -> None:
    assert agree(_ok({"a": [1, 2], "b": "x"}), (200, b'{ "b":"x",\n "a":[1,2] }'), TOL)
    assert agree((200, b"plain text"), (201, b"plain text"), TOL)  # any 2xx, equal bytes
    assert not agree(_ok({"a": 1}), _ok({"a": 1, "b": None}), TOL)  # another key
    assert not agree(_ok({"a": "x"}), _ok({"a": "y"}), TOL)


def test_numbers_agree_within_the_relative_tolerance_at_any_depth() -> None:
    assert same(1.0, 1.0 + 5e-7, TOL) and not same(1.0, 1.0 + 2e-6, TOL)
    assert same(1e9, 1e9 + 900, TOL) and not same(1e9, 1e9 + 1100, TOL)  # relative
    assert same(0.0, 9e-7, TOL) and not same(0.0, 2e-6, TOL)  # absolute below 1
    assert same(3, 3.0000001, TOL) and not same(3, 4, TOL)
    live = {"scores": [[0.1, 0.2], [0.3, {"p": 0.4}]], "n": 2}
    close = {"scores": [[0.1 + 1e-9, 0.2], [0.3, {"p": 0.4 - 1e-9}]], "n": 2}
    far = {"scores": [[0.1, 0.2], [0.3, {"p": 0.41}]], "n": 2}
    assert agree(_ok(live), _ok(close), TOL) and not agree(_ok(live), _ok(far), TOL)
    assert agree(_ok(live), _ok(far), 0.1)  # a looser tolerance
    assert not same(10**400, 10**400 + 1, TOL)  # past a float's range: no overflow


def test_different_shapes_and_types_disagree() -> None:
    assert not same([1, 2], [1, 2, 3], TOL)
    assert not same([1, 2], {"0": 1, "1": 2}, TOL)
    assert not same({"a": 1}, {"b": 1}, TOL)
    assert not same(True, 1, TOL) and not same(0, False, TOL) and same(True, True, TOL)
    assert not same("1", 1, TOL) and not same(None, 0, TOL) and same(None, None, TOL)
    assert not same(float("nan"), float("nan"), TOL)


def test_bodies_that_are_not_json_compare_as_bytes_and_non_2xx_never_agrees() -> None:
    assert not agree((200, b"1.0"), (200, b"1.0 x"), TOL)  # one is not JSON
    assert not agree((200, b"\xff\xfe junk"), (200, b"\xff\xfe other"), TOL)
    assert not agree((200, b"[" * 100_000), (200, b"[" * 100_001), TOL)  # too deep: no crash
    assert not agree((200, b"{}"), (502, b"{}"), TOL)
    assert not agree((503, b"{}"), (200, b"{}"), TOL)


def _shadow(percent: float, counters: ShadowCounters | None = None) -> Shadow:
    return Shadow("s", "ep.s", per_million(percent), counters or ShadowCounters())


@pytest.mark.parametrize("percent", [0, 1, 10, 33, 50, 99, 100, 12.5, 0.4])
def test_every_window_of_100_requests_mirrors_the_percent_to_within_one(percent: float) -> None:
    shadow, in_flight = _shadow(percent), InFlight()
    picks = []
    for _ in range(1000):
        picks.append(bool(due([shadow], in_flight, limit=10_000)))
    for start in range(0, 901):
        assert abs(sum(picks[start : start + 100]) - percent) < 1 + 1e-9, start
    assert shadow.counters.mirrored == sum(picks) == in_flight.count
    if float(percent).is_integer():  # a whole percent is exact in every window
        assert {sum(picks[s : s + 100]) for s in range(901)} == {percent}


def test_copies_beyond_the_limit_are_dropped_and_counted() -> None:
    a, b = _shadow(100), _shadow(50)
    in_flight = InFlight()
    sent = [due([a, b], in_flight, limit=3) for _ in range(4)]
    assert [[s is a for s in group] for group in sent] == [[True], [True, False], [], []]
    assert (a.counters.mirrored, a.counters.dropped) == (2, 2)
    assert (b.counters.mirrored, b.counters.dropped) == (1, 1)
    in_flight.count -= 1  # one answered: the next due copy goes
    assert due([a], in_flight, limit=3) == [a] and in_flight.count == 3


def test_each_copy_ends_compared_or_a_shadow_error_and_times_add_up() -> None:
    counters = ShadowCounters(mirrored=4)
    settle(counters, _ok([1.0]), _ok([1.0]), (0.1, 0.3), TOL)
    settle(counters, _ok([1.0]), _ok([2.0]), (0.1, 0.2), TOL)
    settle(counters, _ok([1.0]), (502, b"crashed"), (0.1, 0.5), TOL)
    settle(counters, _ok([1.0]), None, (0.1, 9.0), TOL)  # timed out, refused, no route
    assert counters.as_json() == {
        "mirrored": 4,
        "dropped": 0,
        "compared": 2,
        "agreed": 1,
        "shadowErrors": 2,
        "liveSeconds": pytest.approx(0.2),
        "shadowSeconds": pytest.approx(0.5),
    }
    with pytest.raises(ValueError, match="0 to 100"):
        per_million(101)


def _doc(percent: float = 50, **entry: object) -> dict[str, object]:
    routes = {"ep.a": {"replicas": [], "hidden": True}, "ep.s": {"replicas": [], "hidden": True}}
    endpoint = {
        "versions": [{"name": "a", "share": 100, "route": "ep.a"}],
        "shadows": [{"name": "s", "route": "ep.s", "percent": percent}],
        **entry,
    }
    return {"revision": 1, "services": routes, "endpoints": {"ep": endpoint}}


def test_table_updates_keep_a_shadows_counters_and_the_copies_in_flight() -> None:
    first = build_table(_doc(), RouteTable())
    ep = first.endpoints["ep"]
    assert not ep.plain and ep.tolerance == 1e-6 and ep.max_in_flight == 64
    assert due(ep.shadows, ep.in_flight, ep.max_in_flight) == []  # half a copy owed
    assert due(ep.shadows, ep.in_flight, ep.max_in_flight) == list(ep.shadows)
    second = build_table(_doc(20, tolerance=0.01, maxMirroredInFlight=2), first).endpoints["ep"]
    assert second.shadows[0].counters is ep.shadows[0].counters
    assert second.in_flight is ep.in_flight and second.in_flight.count == 1
    assert (second.shadows[0].per_million, second.tolerance, second.max_in_flight) == (
        200_000,
        0.01,
        2,
    )
    assert set(first.public) == set() and set(first.routes) == {"ep.a", "ep.s"}
    gone = build_table(_doc(shadows=[]), first).endpoints["ep"]
    assert gone.plain and gone.shadows == ()


@pytest.mark.parametrize(
    ("shadows", "message"),
    [
        ([{"name": "a", "route": "ep.s", "percent": 5}], "already a version"),
        ([{"name": "s", "route": "ep.s", "percent": 5}] * 2, "already a version"),
        ([{"name": "s", "route": "ep.s", "percent": -1}], "0 to 100"),
        ([{"name": "s", "route": "ep.a", "percent": 5}], "a live version's route"),
    ],
)
def test_a_shadow_that_is_also_a_version_or_out_of_range_is_refused(
    shadows: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_table(_doc(shadows=shadows), RouteTable())


def test_shadow_counters_are_in_the_stats_and_add_up_across_workers() -> None:
    table = build_table(_doc(100), RouteTable())
    ep = table.endpoints["ep"]
    for answer in (_ok(1), _ok(2), None):
        (shadow,) = due(ep.shadows, ep.in_flight, ep.max_in_flight)
        settle(shadow.counters, _ok(1), answer, (0.25, 1.0), TOL)
    ep.shadows[0].counters.dropped = 1
    snap = snapshot(table)
    assert snap["endpoints"] == {
        "ep": {
            "shadows": {
                "s": {
                    "mirrored": 3,
                    "dropped": 1,
                    "compared": 2,
                    "agreed": 1,
                    "shadowErrors": 1,
                    "liveSeconds": 0.5,
                    "shadowSeconds": 2.0,
                }
            }
        }
    }
    merged = merge_stats([snap, snapshot(table)])["endpoints"]["ep"]["shadows"]["s"]
    assert (merged["mirrored"], merged["shadowSeconds"]) == (6, 4.0)
    text = render(table).decode()
    metric = "modelport_router_shadow_requests_total"
    for outcome in ("agreed", "disagreed", "error", "dropped"):
        assert value(text, metric, service="ep", version="s", outcome=outcome) == 1
    difference = "modelport_router_shadow_latency_difference_seconds"
    assert value(text, difference, service="ep", version="s") == 1.5
    assert "# HELP modelport_router_shadow_requests_total" in text
