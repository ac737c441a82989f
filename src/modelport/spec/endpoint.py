"""An endpoint's versions and how traffic is split between them: v1's rules, pure.

An endpoint has one to six versions.  Each has a ``traffic_percentile`` (0 to 100, at most
100 in all); what the percentages leave goes to the **default** version, so the default
gets its own percentage plus the rest (versions at 20 % and 40 % with the second as
default: it gets 80 %).  The first version is the default and the control; making one
version the default (or the control) makes every other one not (a treatment).  Each
change returns a new list of versions or raises a :class:`ConfigError` naming the values.

Beyond v1, a version may be a **shadow**: it takes no live traffic, and a copy of
``shadow_percentile`` % of the live requests is sent to it, its answers compared with the
live ones and never returned (as AMLv2's mirror: a version is live or a shadow, never
both).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from modelport.errors import ConfigError, ConflictError, NotFoundError
from modelport.spec.deployment import (
    AksEndpointDeploymentConfiguration,
    AksServiceDeploymentConfiguration,
    DeploymentConfiguration,
)

MAX_VERSIONS = 6
# How far a shadow's numbers may be from the live answer's, relatively, and still agree.
TOLERANCE = 1e-6
CONTROL, TREATMENT = "Control", "Treatment"  # v1's VersionType values
PERCENTILE_ERROR = (
    "Invalid configuration, traffic_percentile cannot be negative or greater than 100."
)


@dataclass(frozen=True)
class Version:
    name: str
    traffic_percentile: int = 0
    is_default: bool = False
    version_type: str = TREATMENT
    shadow_percentile: int = 0

    @property
    def is_control(self) -> bool:
        return self.version_type == CONTROL

    def to_document(self) -> dict[str, object]:
        return {
            "name": self.name,
            "trafficPercentile": self.traffic_percentile,
            "isDefault": self.is_default,
            "versionType": self.version_type,
            "shadowPercentile": self.shadow_percentile,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Version:
        return cls(
            str(doc["name"]),
            int(doc.get("trafficPercentile", 0)),
            bool(doc.get("isDefault", False)),
            str(doc.get("versionType", TREATMENT)),
            int(doc.get("shadowPercentile", 0)),
        )


SEPARATOR = "."  # in a version's service name; no service or endpoint name holds one


def service_name(endpoint: str, version: str) -> str:
    """The name of the service that deploys ``version`` of ``endpoint``."""
    return f"{endpoint}{SEPARATOR}{version}"


def split_name(service: str) -> tuple[str, str] | None:
    """(endpoint, version) for a version's service name, None for a plain service."""
    endpoint, dot, version = service.partition(SEPARATOR)
    return (endpoint, version) if dot else None


def check_percentile(value: int) -> int:
    if not 0 <= value <= 100:
        raise ConfigError(PERCENTILE_ERROR)
    return value


def check_shadow(value: int) -> int:
    if not 0 <= value <= 100:
        raise ConfigError(
            f"Invalid configuration, shadow_percentile cannot be negative or greater than 100 "
            f"(got {value})."
        )
    return value


def add(
    versions: Sequence[Version],
    name: str,
    traffic_percentile: int = 0,
    is_default: bool | None = None,
    is_control: bool | None = None,
    shadow_percentile: int = 0,
) -> list[Version]:
    """``versions`` with ``name`` added; the first one is the default and the control."""
    if any(v.name == name for v in versions):
        raise ConflictError(f"version {name!r} already exists in this endpoint")
    if len(versions) >= MAX_VERSIONS:
        names = ", ".join(v.name for v in versions)
        raise ConfigError(
            f"an endpoint has at most {MAX_VERSIONS} versions; it has {len(versions)} "
            f"({names}): delete one before adding {name!r}"
        )
    first = not versions
    added = Version(
        name,
        check_percentile(traffic_percentile),
        is_default=first or bool(is_default),
        version_type=CONTROL if first or is_control else TREATMENT,
        shadow_percentile=check_shadow(shadow_percentile),
    )
    return _settled([*versions, added], added)


def update(
    versions: Sequence[Version],
    name: str,
    traffic_percentile: int | None = None,
    is_default: bool | None = None,
    is_control: bool | None = None,
    shadow_percentile: int | None = None,
) -> list[Version]:
    """``name`` changed where a value is given (None: unchanged, as v1's update_version)."""
    current = find(versions, name)
    if is_default is False and current.is_default:
        raise ConfigError(
            f"version {name!r} is the default: make another version the default instead"
        )
    if is_control is False and current.is_control:
        raise ConfigError(
            f"version {name!r} is the control: make another version the control instead"
        )
    changed = replace(
        current,
        traffic_percentile=(
            current.traffic_percentile
            if traffic_percentile is None
            else check_percentile(traffic_percentile)
        ),
        is_default=current.is_default or bool(is_default),
        version_type=CONTROL if current.is_control or is_control else TREATMENT,
        shadow_percentile=(
            current.shadow_percentile
            if shadow_percentile is None
            else check_shadow(shadow_percentile)
        ),
    )
    return _settled([changed if v.name == name else v for v in versions], changed)


def delete(versions: Sequence[Version], name: str) -> list[Version]:
    """``versions`` without ``name``; the default and the control go last."""
    gone = find(versions, name)
    rest = [v for v in versions if v.name != name]
    if not rest:
        raise ConfigError(
            f"version {name!r} is the endpoint's only version: delete the endpoint instead"
        )
    for role, held in (("default", gone.is_default), ("control", gone.is_control)):
        if held:
            raise ConfigError(
                f"version {name!r} is the {role}: make another version the {role} "
                "before deleting it"
            )
    return rest


def find(versions: Sequence[Version], name: str) -> Version:
    for v in versions:
        if v.name == name:
            return v
    names = ", ".join(v.name for v in versions) or "none"
    raise NotFoundError(f"no version {name!r} in this endpoint (its versions: {names})")


def _settled(versions: list[Version], changed: Version) -> list[Version]:
    """One default and one control (the changed version's word wins), and at most 100 %
    in all."""
    if changed.is_default:
        versions = [v if v.name == changed.name else replace(v, is_default=False) for v in versions]
    if changed.is_control:
        versions = [
            v if v.name == changed.name else replace(v, version_type=TREATMENT) for v in versions
        ]
    for v in versions:
        if v.shadow_percentile and (v.traffic_percentile or v.is_default or v.is_control):
            role = "the default" if v.is_default else "the control" if v.is_control else None
            live = role or f"given {v.traffic_percentile}% of the live traffic"
            raise ConfigError(
                f"version {v.name!r} is {live} and cannot also be a shadow "
                f"(shadow_percentile {v.shadow_percentile}): a version is live or a shadow"
            )
    total = sum(v.traffic_percentile for v in versions)
    if total > 100:
        given = ", ".join(f"{v.name} {v.traffic_percentile}%" for v in versions)
        raise ConfigError(
            f"the versions' traffic_percentile add up to {total}%, over 100% ({given})"
        )
    return versions


def shares(versions: Sequence[Version]) -> dict[str, int]:
    """Each version's share of the traffic, in percent: its own percentage, and for the
    default also what the percentages leave (20 % + 10 % on two treatments: the default
    gets 70 %)."""
    rest = 100 - sum(v.traffic_percentile for v in versions)
    return {v.name: v.traffic_percentile + (rest if v.is_default else 0) for v in versions}


def live_shares(versions: Sequence[Version], serving: Collection[str]) -> dict[str, int]:
    """:func:`shares` as the router deals them now: a version with nothing serving yet
    (rolling out, or failed) gives its share to the default, so adding a version never
    sends requests to replicas that are not there.  A default with nothing serving keeps
    its share: its requests wait for it (the endpoint is starting)."""
    dealt = shares(versions)
    default = next((v.name for v in versions if v.is_default), None)
    if default is None or default not in serving:
        return dealt
    for name in list(dealt):
        if name != default and name not in serving and dealt[name]:
            dealt[default] += dealt[name]
            dealt[name] = 0
    return dealt


def version_config(
    config: DeploymentConfiguration,
) -> tuple[AksServiceDeploymentConfiguration, str | None, int | None]:
    """A version's own deployment configuration, and the version name and percentage an
    ``AksEndpoint.deploy_configuration`` carries (None where it gives none)."""
    if isinstance(config, AksEndpointDeploymentConfiguration):
        values = config.given()
        name = values.pop("version_name", None)
        percentile = values.pop("traffic_percentile", None)
        return AksServiceDeploymentConfiguration.create(values), name, percentile
    if type(config) is AksServiceDeploymentConfiguration:
        return config, None, None
    raise ConfigError(
        f"an endpoint's version takes an AKSENDPOINT or AKS deployment configuration, "
        f"not computeType {config.compute_type.upper()}"
    )
