"""Tables of the workspace database (SQLAlchemy 2 declarative)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from modelport.store.secrets import Sealed


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class VersionCounter(Base):
    """Last version handed out per (kind, name); bumped atomically by an upsert."""

    __tablename__ = "version_counters"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    last: Mapped[int] = mapped_column(BigInteger)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    basename: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    framework: Mapped[str | None] = mapped_column(String(64))
    framework_version: Mapped[str | None] = mapped_column(String(64))
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    files: Mapped[list[ModelFileRow]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="ModelFileRow.path"
    )


class ModelFileRow(Base):
    __tablename__ = "model_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[ModelVersionRow] = relationship(back_populates="files")


class EnvironmentRow(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SnapshotRow(Base):
    """A source directory as uploaded: its files by content, keyed by the manifest hash."""

    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    basename: Mapped[str] = mapped_column(String(255))
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# A service's name, or an endpoint version's ``<endpoint>.<version>`` (32 + 1 + 32).
SERVICE_NAME_LENGTH = 80


class ServiceRow(Base):
    """A service's desired state (spec, generation) and what the reconciler last saw.

    An endpoint's version is a service of its own, named ``<endpoint>.<version>`` (a dot
    no service name may hold), with ``endpoint`` in its spec.
    """

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(SERVICE_NAME_LENGTH), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    primary_key: Mapped[str] = mapped_column(Sealed)
    secondary_key: Mapped[str] = mapped_column(Sealed)
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScalingEventRow(Base):
    """One autoscaling decision that changed a service's replica count, with its inputs."""

    __tablename__ = "scaling_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    service: Mapped[str] = mapped_column(String(SERVICE_NAME_LENGTH), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    from_replicas: Mapped[int] = mapped_column(BigInteger)
    to_replicas: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)


class ComputeTargetRow(Base):
    """An attached Kubernetes cluster: where to reach it, and the credentials to do so.

    ``kubeconfig`` holds credentials, kept as carefully as the services' keys: it never
    leaves the server in an answer and is never logged.
    """

    __tablename__ = "compute_targets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    cluster_purpose: Mapped[str] = mapped_column(String(16))
    namespace: Mapped[str] = mapped_column(String(63))
    context: Mapped[str] = mapped_column(String(255))
    server: Mapped[str] = mapped_column(Text)
    server_version: Mapped[str | None] = mapped_column(String(64))
    kubeconfig: Mapped[str] = mapped_column(Sealed)
    provisioning_state: Mapped[str] = mapped_column(String(32))
    provisioning_errors: Mapped[str | None] = mapped_column(Text)
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EndpointRow(Base):
    """An endpoint: its settings, keys and versions (v1's rules, see ``spec/endpoint.py``);
    each version's deployment is a service row of its own."""

    __tablename__ = "endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    versions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32))
    primary_key: Mapped[str] = mapped_column(Sealed)
    secondary_key: Mapped[str] = mapped_column(Sealed)
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EndpointEventRow(Base):
    """What happened to an endpoint's traffic: a promotion's steps, a roll-back and why."""

    __tablename__ = "endpoint_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class SigningKeyRow(Base):
    """A key the control plane signs scoring tokens with (Ed25519), newest signing.

    A retired key signs nothing more; it is published for verifying until
    ``verify_until`` (when the last token it signed expires), then deleted.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key: Mapped[str] = mapped_column(Sealed)  # PKCS#8 PEM
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    retired_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verify_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScoringClientRow(Base):
    """A named credential that may obtain tokens for its services, and do nothing else."""

    __tablename__ = "scoring_clients"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256, hex
    services: Mapped[list[str]] = mapped_column(JSON)
    created_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkspaceSettingRow(Base):
    """One workspace-wide value (the token issuer)."""

    __tablename__ = "workspace_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
