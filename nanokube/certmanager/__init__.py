"""cert-manager, run by its addon (`nanokube cert-manager`, main.py): Issuers, ClusterIssuers and Certificates
(cert-manager.io/v1), the ingress-shim, and the SelfSigned, CA and ACME (HTTP-01) issuers."""
