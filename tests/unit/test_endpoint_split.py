"""An endpoint's versions (v1's rules) and the router's split between them (pure)."""

from __future__ import annotations

from collections import Counter

import pytest

from modelport.errors import ConfigError, ConflictError, NotFoundError
from modelport.router.endpoint import Endpoint, build_endpoints, cookie, pick
from modelport.router.split import Split, buckets, sticky
from modelport.spec import endpoint
from modelport.spec.endpoint import CONTROL, TREATMENT, Version


def _three() -> list[Version]:
    versions = endpoint.add([], "a")
    versions = endpoint.add(versions, "b", 20)
    return endpoint.add(versions, "c", 10)


def test_the_default_gets_what_the_percentages_leave() -> None:
    # The contract's worked examples: 20 % + 10 % on two treatments, the default gets 70 %;
    # versions at 20 % and 40 %, the second the default: it gets 80 %.
    assert endpoint.shares(_three()) == {"a": 70, "b": 20, "c": 10}
    two = endpoint.add(endpoint.add([], "x", 20), "y", 40, is_default=True)
    assert endpoint.shares(two) == {"x": 20, "y": 80}


def test_the_first_version_is_default_and_control_and_one_of_each_stays() -> None:
    versions = _three()
    assert [(v.is_default, v.version_type) for v in versions] == [
        (True, CONTROL),
        (False, TREATMENT),
        (False, TREATMENT),
    ]
    versions = endpoint.update(versions, "c", is_default=True, is_control=True)
    assert [v.name for v in versions if v.is_default] == ["c"]
    assert [v.name for v in versions if v.is_control] == ["c"]
    assert endpoint.update(versions, "b", 30)[1].traffic_percentile == 30  # None: unchanged
    assert endpoint.update(versions, "b")[1] == versions[1]


def test_each_broken_rule_is_an_error_naming_the_values() -> None:
    versions = _three()
    with pytest.raises(ConfigError, match="cannot be negative or greater than 100"):
        endpoint.add(versions, "d", 101)
    with pytest.raises(ConfigError) as over:
        endpoint.add(versions, "d", 80)
    assert over.value.message == (
        "the versions' traffic_percentile add up to 110%, over 100% (a 0%, b 20%, c 10%, d 80%)"
    )
    with pytest.raises(ConflictError, match="version 'b' already exists"):
        endpoint.add(versions, "b")
    for name in "def":
        versions = endpoint.add(versions, name)
    with pytest.raises(ConfigError, match=r"at most 6 versions; it has 6 \(a, b, c, d, e, f\)"):
        endpoint.add(versions, "g")
    with pytest.raises(ConfigError, match="'a' is the default: make another version"):
        endpoint.delete(versions, "a")
    with pytest.raises(ConfigError, match="'a' is the default"):
        endpoint.update(versions, "a", is_default=False)
    with pytest.raises(NotFoundError, match="no version 'z'"):
        endpoint.delete(versions, "z")
    assert [v.name for v in endpoint.delete(versions, "b")] == ["a", "c", "d", "e", "f"]
    with pytest.raises(ConfigError, match="only version: delete the endpoint"):
        endpoint.delete(endpoint.add([], "solo"), "solo")


@pytest.mark.parametrize(
    "weights",
    [
        [("a", 70), ("b", 20), ("c", 10)],
        [("x", 20), ("y", 80)],
        [("p", 33), ("q", 33), ("r", 34)],
        [("a", 1), ("b", 99)],
        [("a", 17), ("b", 23), ("c", 29), ("d", 31)],
    ],
)
def test_the_split_is_exact_to_one_request_after_any_number_of_requests(
    weights: list[tuple[str, int]],
) -> None:
    split = Split(weights)
    total = sum(w for _, w in weights)
    seen: Counter[str] = Counter()
    for n in range(1, 1001):
        seen[split.pick()] += 1
        for name, weight in weights:
            assert abs(seen[name] - n * weight / total) <= 1, (n, name, seen)


def test_a_version_without_weight_is_never_picked_and_runs_are_interleaved() -> None:
    split = Split([("a", 50), ("b", 0), ("c", 50)])
    picks = [split.pick() for _ in range(6)]
    assert picks == ["a", "c", "a", "c", "a", "c"]
    with pytest.raises(ValueError):
        Split([("a", 0)])


def test_sticky_keys_stay_put_and_only_keys_of_a_growing_version_move() -> None:
    keys = [f"user-{i}".encode() for i in range(3000)]
    table = buckets([("a", 80), ("b", 10), ("c", 10)])
    assert Counter(table) == {"a": 800, "b": 100, "c": 100}
    before = {k: sticky(k, table) for k in keys}
    assert before == {k: sticky(k, table) for k in keys}
    assert abs(Counter(before.values())["b"] / len(keys) - 0.10) < 0.03
    moved_table = buckets([("a", 70), ("b", 20), ("c", 10)], table)
    assert sum(x != y for x, y in zip(table, moved_table, strict=True)) == 100  # no more
    after = {k: sticky(k, moved_table) for k in keys}
    moved = [k for k in keys if after[k] != before[k]]
    assert moved and all(before[k] == "a" and after[k] == "b" for k in moved)
    gone = buckets([("a", 70), ("c", 30)], moved_table)  # b removed: only its keys move
    assert all(gone[i] == moved_table[i] for i in range(1000) if moved_table[i] != "b")
    assert Counter(buckets([("p", 1), ("q", 2)])) == {"p": 333, "q": 667}


def _endpoints(
    shares: tuple[int, int], previous: dict[str, Endpoint] | None = None, **entry: object
) -> dict[str, Endpoint]:
    versions = [
        {"name": "a", "share": shares[0], "route": "ep.a"},
        {"name": "b", "share": shares[1], "route": "ep.b"},
    ]
    doc = {"endpoints": {"ep": {"versions": versions, **entry}}}
    return build_endpoints(doc, previous or {})


def test_a_sticky_header_or_cookie_picks_by_bucket_and_without_one_the_split_deals() -> None:
    by_header = _endpoints((90, 10), sticky={"header": "X-User"})["ep"]
    by_cookie = _endpoints((90, 10), sticky={"cookie": "session"})["ep"]
    table = buckets([("a", 90), ("b", 10)])
    for i in range(200):
        key = f"user-{i}".encode()
        assert pick(by_header, [(b"x-user", key)]) == sticky(key, table)
        cookies = [(b"cookie", b"theme=dark; session=" + key + b"; lang=en")]
        assert pick(by_cookie, cookies) == sticky(key, table)
    keyless = [pick(by_header, [(b"cookie", b"x-user=1")]) for _ in range(10)]
    assert keyless.count("b") == 1  # the split, exact: 9 and 1
    assert [pick(by_cookie, [(b"x-user", b"u")]) for _ in range(10)].count("b") == 1
    assert not by_header.plain and _endpoints((90, 10))["ep"].plain


def test_a_cookie_is_found_among_others_without_parsing_the_rest() -> None:
    assert cookie(b"a=1; session=xyz; b=2", b"session") == b"xyz"
    assert cookie(b'session="q"', b"session") == b"q"
    assert cookie(b"mysession=1; session2=2", b"session") is None
    assert cookie(b"session", b"session") is None


def test_table_updates_keep_the_split_and_move_only_the_buckets_a_change_needs() -> None:
    first = _endpoints((90, 10), sticky={"header": "k"})
    same = _endpoints((90, 10), first, sticky={"header": "k"})
    assert same["ep"].split is first["ep"].split
    assert same["ep"].buckets is first["ep"].buckets
    grown = _endpoints((80, 20), same, sticky={"header": "k"})["ep"]
    before, after = first["ep"].buckets, grown.buckets
    changed = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
    assert changed == [("a", "b")] * 100
    with pytest.raises(ValueError, match="sticky takes"):
        _endpoints((90, 10), sticky={"header": "k", "cookie": "c"})


def test_a_shadow_is_never_live_and_names_its_clash() -> None:
    versions = endpoint.add(endpoint.add([], "a"), "s", shadow_percentile=20)
    assert endpoint.shares(versions) == {"a": 100, "s": 0}
    with pytest.raises(ConfigError, match=r"'s' is given 10% of the live traffic and cannot"):
        endpoint.update(versions, "s", traffic_percentile=10)
    with pytest.raises(ConfigError, match="'s' is the default and cannot also be a shadow"):
        endpoint.update(versions, "s", is_default=True)
    with pytest.raises(ConfigError, match="'a' is the default and cannot also be a shadow"):
        endpoint.update(versions, "a", shadow_percentile=5)
    with pytest.raises(ConfigError, match=r"shadow_percentile cannot be negative .* \(got 120\)"):
        endpoint.update(versions, "s", shadow_percentile=120)
    assert endpoint.update(versions, "s", shadow_percentile=0)[1].shadow_percentile == 0
    stored = [v.to_document() for v in versions]
    assert [Version.from_document(d) for d in stored] == versions


def test_a_version_not_serving_yet_gives_its_share_to_the_default() -> None:
    versions = _three()  # a 70 (default), b 20, c 10
    assert endpoint.live_shares(versions, {"a", "b", "c"}) == {"a": 70, "b": 20, "c": 10}
    assert endpoint.live_shares(versions, {"a", "c"}) == {"a": 90, "b": 0, "c": 10}
    # With the default not serving, nothing moves: its requests wait for it.
    assert endpoint.live_shares(versions, {"b"}) == {"a": 70, "b": 20, "c": 10}


def test_a_versions_own_configuration_comes_out_of_an_endpoint_one() -> None:
    from modelport.spec.deployment import deployment_config_from_document

    doc = {"computeType": "AKSENDPOINT", "versionName": "blue", "trafficPercentile": 20}
    own, name, percent = endpoint.version_config(
        deployment_config_from_document({**doc, "numReplicas": 2})
    )
    assert (own.compute_type, own.num_replicas, name, percent) == ("aks", 2, "blue", 20)
    plain = deployment_config_from_document({"computeType": "AKS"})
    assert endpoint.version_config(plain)[1:] == (None, None)
    with pytest.raises(ConfigError, match="not computeType LOCAL"):
        endpoint.version_config(deployment_config_from_document({"computeType": "local"}))
    assert endpoint.split_name(endpoint.service_name("shop", "blue")) == ("shop", "blue")
    assert endpoint.split_name("shop") is None
