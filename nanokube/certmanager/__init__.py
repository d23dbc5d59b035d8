"""cert-manager, in the controller-manager: Issuers, ClusterIssuers and Certificates
(cert-manager.io/v1), the ingress-shim, and the SelfSigned, CA and ACME (HTTP-01) issuers."""
