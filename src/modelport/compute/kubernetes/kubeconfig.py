"""Kubeconfigs as the server takes them: one text, self-contained, holding credentials.

The SDK and the CLI send a kubeconfig cut down to one context with the files it names
inlined (what ``kubectl config view --minify --flatten`` prints). The server reads no
file a kubeconfig names and runs no command it names (``exec`` and ``auth-provider``
credentials): those would be files and programs of the server's machine, not of the
user's. Messages about a kubeconfig never quote its values, only names and places.
"""

from __future__ import annotations

import msgspec
import yaml
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError

from modelport.errors import ComputeTargetError

_INLINED = "the SDK and `modelport compute attach` inline them (`kubectl config view --flatten`)"


def load(text: str, context: str | None = None) -> SingleConfig:
    """The kubeconfig's ``context`` (default: its current context), checked to be usable
    by the server; a :class:`ComputeTargetError` saying what is wrong otherwise."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ComputeTargetError(f"the kubeconfig is not valid YAML{_where(exc)}") from None
    if not isinstance(document, dict):
        raise ComputeTargetError("the kubeconfig is not a YAML mapping")
    try:
        config = KubeConfig.from_dict(document).get(context)
    except ConfigError as exc:
        raise ComputeTargetError(f"the kubeconfig cannot be used: {exc}") from None
    except KeyError as exc:
        raise ComputeTargetError(f"the kubeconfig has no {exc}") from None
    except (TypeError, msgspec.ValidationError) as exc:
        raise ComputeTargetError(f"the kubeconfig is not valid: {exc}") from None
    assert config is not None  # get() without a default returns a config or raises
    _check_self_contained(config)
    return config


def _where(exc: yaml.YAMLError) -> str:
    """Line and column only: PyYAML's own message quotes the line, maybe a token."""
    mark = getattr(exc, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _check_self_contained(config: SingleConfig) -> None:
    name = config.context_name
    if config.user is None:
        raise ComputeTargetError(f"context {name!r} of the kubeconfig names no user (credentials)")
    if config.user.exec is not None or config.user.auth_provider is not None:
        command = config.user.exec.command if config.user.exec else "an auth-provider"
        raise ComputeTargetError(
            f"context {name!r} gets its credentials by running {command!r}; the server runs "
            "no command from a kubeconfig: use a token or a client certificate (for "
            "instance a ServiceAccount's token)"
        )
    named = {  # fields that name a file of the machine reading the kubeconfig
        "certificate-authority": config.cluster.certificate_auth,
        "client-certificate": config.user.client_cert,
        "client-key": config.user.client_key,
        "tokenFile": config.user.token_file,
    }
    files = [field for field, value in named.items() if value]
    if files:
        raise ComputeTargetError(
            f"context {name!r} of the kubeconfig names files ({', '.join(files)}); the "
            f"server reads none: {_INLINED}"
        )
