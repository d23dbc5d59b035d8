"""Names shared by cert-manager's controllers and the ingress controller: annotations,
labels, and the Secret a TLS entry without a secretName gets from the default issuer."""
from __future__ import annotations

GROUP = "cert-manager.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

# Where ClusterIssuers keep their Secrets (cert-manager's --cluster-resource-namespace).
CLUSTER_RESOURCE_NAMESPACE = "cert-manager"

# ingress-shim annotations on Ingresses
ISSUER_ANNOTATION = "cert-manager.io/issuer"
CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
ISSUER_KIND_ANNOTATION = "cert-manager.io/issuer-kind"
ISSUER_GROUP_ANNOTATION = "cert-manager.io/issuer-group"
DURATION_ANNOTATION = "cert-manager.io/duration"
RENEW_BEFORE_ANNOTATION = "cert-manager.io/renew-before"
COMMON_NAME_ANNOTATION = "cert-manager.io/common-name"

# annotations cert-manager writes on the Secrets it manages
CERTIFICATE_NAME_ANNOTATION = "cert-manager.io/certificate-name"
ISSUER_NAME_ANNOTATION = "cert-manager.io/issuer-name"
ALT_NAMES_ANNOTATION = "cert-manager.io/alt-names"
IP_SANS_ANNOTATION = "cert-manager.io/ip-sans"
COMMON_NAME_SECRET_ANNOTATION = "cert-manager.io/common-name"

# nanokube's default issuer: a ClusterIssuer carrying this annotation issues certificates for
# Ingress TLS entries that name no Secret and whose Ingress names no issuer.
DEFAULT_ISSUER_ANNOTATION = "nanokube.io/default-issuer"
DEFAULT_ISSUER_NAME = "nanokube-ca"


def default_secret_name(ingress_name: str, index: int) -> str:
    """The Secret of the `index`-th TLS entry of an Ingress when the entry has no secretName.

    `<ingress>-tls` (then `<ingress>-tls-1`, `-2`... for further such entries): an Ingress's name
    is unique in its namespace, so two Ingresses never share one; the name stays the same across
    renewals and host changes (the Secret is updated in place, which is what lets the ingress
    controller swap certificates without a new path); and it is the name people would give it
    by hand."""
    return f"{ingress_name}-tls" if index == 0 else f"{ingress_name}-tls-{index}"
