"""An endpoint's versions and how traffic is split between them: v1's rules, pure.

An endpoint has one to six versions.  Each has a ``traffic_percentile`` (0 to 100, at most
100 in all); what the percentages leave goes to the **default** version, so the default
gets its own percentage plus the rest (versions at 20 % and 40 % with the second as
default: it gets 80 %).  The first version is the default and the control; making one
version the default (or the control) makes every other one not (a treatment).  Each
change returns a new list of versions or raises a :class:`ConfigError` naming the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from modelport.errors import ConfigError, ConflictError, NotFoundError

MAX_VERSIONS = 6
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

    @property
    def is_control(self) -> bool:
        return self.version_type == CONTROL


def check_percentile(value: int) -> int:
    if not 0 <= value <= 100:
        raise ConfigError(PERCENTILE_ERROR)
    return value


def add(
    versions: Sequence[Version],
    name: str,
    traffic_percentile: int = 0,
    is_default: bool | None = None,
    is_control: bool | None = None,
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
    )
    return _settled([*versions, added], added)


def update(
    versions: Sequence[Version],
    name: str,
    traffic_percentile: int | None = None,
    is_default: bool | None = None,
    is_control: bool | None = None,
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
