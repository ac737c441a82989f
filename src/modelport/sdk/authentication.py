"""v1's ``ServicePrincipalAuthentication``: a scoring client's credential for the SDK.

A scoring application holds a client (``modelport client create NAME --service S``)
instead of the admin token: ``Workspace(url, auth=ServicePrincipalAuthentication(...))``
can then get tokens for the client's services and score them, and nothing else.
"""

from __future__ import annotations

from modelport.errors import InvalidInputError
from modelport.spec.names import CLIENT_SECRET_PREFIX


class ServicePrincipalAuthentication:
    """``tenant_id`` is kept for v1's signature (Azure AD's tenant has no counterpart
    here: the secret alone names the workspace's client); ``service_principal_id`` is
    the client's name and ``service_principal_password`` the secret ``modelport client
    create`` printed."""

    def __init__(
        self,
        tenant_id: str,
        service_principal_id: str,
        service_principal_password: str,
        cloud: str = "AzureCloud",
    ) -> None:
        if not service_principal_password.startswith(CLIENT_SECRET_PREFIX):
            raise InvalidInputError(
                "service_principal_password is not a modelport client secret "
                f"(they start with {CLIENT_SECRET_PREFIX!r})",
                hint="create one with: modelport client create NAME --service SERVICE",
            )
        self.tenant_id = tenant_id
        self.service_principal_id = service_principal_id
        self._secret = service_principal_password
        self.cloud = cloud

    def bearer(self) -> str:
        return self._secret

    def __repr__(self) -> str:  # never the secret
        return f"ServicePrincipalAuthentication(service_principal_id={self.service_principal_id!r})"
