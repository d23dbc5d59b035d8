"""Ingresses (networking.k8s.io): stored as v1, also served as v1beta1.

v1beta1 differs from v1 only in the backend shape (serviceName/servicePort vs service.name and
service.port.number|name, spec.backend vs spec.defaultBackend) and in pathType being optional
there (defaulted to ImplementationSpecific when a v1beta1 object is read in).
"""
from __future__ import annotations

import copy
import re
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy

GROUP = "networking.k8s.io"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
_WILDCARD_DNS1123_SUBDOMAIN = r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


# ---- shared validators ------------------------------------------------------------------------

def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > V.DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {V.DNS1123_SUBDOMAIN_MAX} characters")
    if not re.fullmatch(_WILDCARD_DNS1123_SUBDOMAIN, value):
        errs.append("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
                    "subdomain, which must consist of lower case alphanumeric characters, '-' "
                    "or '.' and end with an alphanumeric character (e.g. '*.example.com', regex "
                    f"used for validation is '{_WILDCARD_DNS1123_SUBDOMAIN}')")
    return errs


def is_valid_path_segment_name(name: str) -> list[str]:
    """path.IsValidPathSegmentName."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def validate_typed_local_object_reference(ref: dict, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if ref.get("apiGroup") is not None:
        errs += [E.invalid(f"{field}.apiGroup", ref["apiGroup"], m)
                 for m in V.is_dns1123_subdomain(ref["apiGroup"])]
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            errs.append(E.required(f"{field}.{key}", f"{key} is required"))
        else:
            errs += [E.invalid(f"{field}.{key}", value, m)
                     for m in is_valid_path_segment_name(value)]
    return errs


def _is_ip(value: str) -> bool:
    return V.parse_ip(value) is not None


# ---- validation -------------------------------------------------------------------------------

def validate_backend(backend: dict, field: str) -> list[FieldError]:
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [E.invalid(field, "", "cannot set both resource and service backends")]
    if resource is not None:
        return validate_typed_local_object_reference(resource, f"{field}.resource")
    if service is None:
        return [E.invalid(field, "", "resource or service backend is required")]
    errs: list[FieldError] = []
    name = service.get("name") or ""
    if not name:
        errs.append(E.required(f"{field}.service.name"))
    else:
        errs += [E.invalid(f"{field}.service.name", name, m) for m in V.is_dns1035_label(name)]
    port = service.get("port") or {}
    port_name, port_number = port.get("name") or "", port.get("number") or 0
    if port_name and port_number:
        errs.append(E.invalid(field, "", "cannot set both port name & port number"))
    elif port_name:
        errs += [E.invalid(f"{field}.service.port.name", port_name, m)
                 for m in V.is_valid_port_name(port_name)]
    elif port_number:
        errs += [E.invalid(f"{field}.service.port.number", port_number, m)
                 for m in V.is_valid_port_num(port_number)]
    else:
        errs.append(E.required(field, "port name or number is required"))
    return errs


def validate_http_path(path: dict, field: str) -> list[FieldError]:
    path_type = path.get("pathType")
    if path_type is None:
        return [E.required(f"{field}.pathType", "pathType must be specified")]
    value = path.get("path") or ""
    errs: list[FieldError] = []
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(E.invalid(f"{field}.path", value, "must be an absolute path"))
        if value:
            errs += [E.invalid(f"{field}.path", value, f"must not contain '{seq}'")
                     for seq in _INVALID_PATH_SEQUENCES if seq in value]
            errs += [E.invalid(f"{field}.path", value, f"cannot end with '{suffix}'")
                     for suffix in _INVALID_PATH_SUFFIXES if value.endswith(suffix)]
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(E.invalid(f"{field}.path", value, "must be an absolute path"))
    else:
        errs.append(E.not_supported(f"{field}.pathType", path_type, PATH_TYPES))
    errs += validate_backend(path.get("backend") or {}, f"{field}.backend")
    return errs


def validate_rules(rules: list, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(rules):
        path = f"{field}[{i}]"
        host = rule.get("host") or ""
        if host:
            if _is_ip(host):
                errs.append(E.invalid(f"{path}.host", host,
                                      "must be a DNS name, not an IP address"))
            if "*" in host:
                msgs = is_wildcard_dns1123_subdomain(host)
            else:
                msgs = V.is_dns1123_subdomain(host)
            errs += [E.invalid(f"{path}.host", host, m) for m in msgs]
        http = rule.get("http")
        if http is not None:
            paths = http.get("paths") or []
            if not paths:
                errs.append(E.required(f"{path}.http.paths"))
            for j, p in enumerate(paths):
                errs += validate_http_path(p, f"{path}.http.paths[{j}]")
    return errs


def validate_tls(tls: list, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, entry in enumerate(tls):
        for j, host in enumerate(entry.get("hosts") or []):
            msgs = is_wildcard_dns1123_subdomain(host) if "*" in host \
                else V.is_dns1123_subdomain(host)
            errs += [E.invalid(f"{field}[{i}].hosts[{j}]", host, m) for m in msgs]
        secret = entry.get("secretName") or ""
        if secret:
            errs += [E.invalid(f"{field}[{i}].secretName", secret, m)
                     for m in V.is_dns1123_subdomain(secret)]
    return errs


def validate_ingress_spec(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    rules, default_backend = spec.get("rules"), spec.get("defaultBackend")
    if not rules and default_backend is None:
        value = GoLiteral("[]networking.IngressRule(nil)" if rules is None
                          else "[]networking.IngressRule{}")
        errs.append(E.invalid("spec", value, "either `defaultBackend` or `rules` must be "
                              "specified"))
    if default_backend is not None:
        errs += validate_backend(default_backend, "spec.defaultBackend")
    if rules:
        errs += validate_rules(rules, "spec.rules")
    if spec.get("tls"):
        errs += validate_tls(spec["tls"], "spec.tls")
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        errs += [E.invalid("spec.ingressClassName", class_name, m)
                 for m in V.is_dns1123_subdomain(class_name)]
    return errs


def validate_load_balancer_status(status: dict) -> list[FieldError]:
    """ValidateIngressLoadBalancerStatus, for status updates."""
    errs: list[FieldError] = []
    for i, ing in enumerate(((status or {}).get("loadBalancer") or {}).get("ingress") or []):
        path = f"status.loadBalancer.ingress[{i}]"
        if ing.get("ip"):
            errs += V.is_valid_ip(f"{path}.ip", ing["ip"])
        hostname = ing.get("hostname") or ""
        if hostname:
            errs += [E.invalid(f"{path}.hostname", hostname, m)
                     for m in V.is_dns1123_subdomain(hostname)]
            if _is_ip(hostname):
                errs.append(E.invalid(f"{path}.hostname", hostname,
                                      "must be a DNS name, not an IP address"))
    return errs


def _validate_ingress(obj: dict) -> list[FieldError]:
    errs = V.validate_object_meta(obj.get("metadata") or {}, True)
    return errs + validate_ingress_spec(obj.get("spec") or {})


# ---- v1beta1 <-> v1 ---------------------------------------------------------------------------

def backend_to_v1(backend: dict) -> dict:
    out = {k: v for k, v in backend.items() if k not in ("serviceName", "servicePort")}
    name = backend.get("serviceName") or ""
    port = backend.get("servicePort")
    if "serviceName" in backend or isinstance(port, str) or \
            (isinstance(port, int) and port != 0):
        v1_port: dict = {}
        if isinstance(port, str):
            if port:
                v1_port["name"] = port
        elif isinstance(port, int) and port:
            v1_port["number"] = port
        out["service"] = {"name": name, "port": v1_port}
    return out


def backend_to_v1beta1(backend: dict) -> dict:
    out = {k: v for k, v in backend.items() if k != "service"}
    service = backend.get("service")
    if service is not None:
        port = service.get("port") or {}
        out["serviceName"] = service.get("name") or ""
        out["servicePort"] = port["name"] if port.get("name") else port.get("number") or 0
    return out


def _convert_spec(spec: dict, convert_backend, from_key: str, to_key: str,
                  default_path_type: bool) -> None:
    if from_key in spec:
        backend = spec.pop(from_key)
        spec[to_key] = convert_backend(backend) if isinstance(backend, dict) else backend
    for rule in spec.get("rules") or []:
        for path in ((rule or {}).get("http") or {}).get("paths") or []:
            if isinstance(path.get("backend"), dict):
                path["backend"] = convert_backend(path["backend"])
            if default_path_type and path.get("pathType") is None:
                path["pathType"] = "ImplementationSpecific"


# ---- strategy ---------------------------------------------------------------------------------

def _hosts_cell(rules: list) -> str:
    """formatHosts: at most three hosts, then `+ N more...`; `*` when none."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def load_balancer_address(status: dict) -> str:
    """ingressLoadBalancerStatusStringer (wide): IPs or hostnames, sorted and unique."""
    found = set()
    for ing in ((status or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip"):
            found.add(ing["ip"])
        elif ing.get("hostname"):
            found.add(ing["hostname"])
    return ",".join(sorted(found))


class IngressStrategy(Strategy):
    group = GROUP
    version = "v1"
    served_versions = ("v1", "v1beta1")
    deprecated_versions = {"v1beta1": "networking.k8s.io/v1beta1 Ingress is deprecated in v1.19+, "
                                      "unavailable in v1.22+; use networking.k8s.io/v1 Ingress"}
    kind = "Ingress"
    plural = "ingresses"
    singular = "ingress"
    short_names = ("ing",)
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Class", description="The name of the IngressClass resource that should be used "
               "to implement this Ingress."),
        Column("Hosts", description="Hosts that incoming requests are matched against before "
               "the ingress rule"),
        Column("Address", description="Address is a list containing ingress points for the "
               "load-balancer"),
        Column("Ports", description="Ports of TLS configurations that open"),
        AGE_COLUMN,
    ]

    def convert_to_version(self, obj: dict, version: str) -> dict:
        if version != "v1beta1":
            return obj
        out = copy.deepcopy(obj)
        if "apiVersion" in out:
            out["apiVersion"] = f"{GROUP}/v1beta1"
        if isinstance(out.get("spec"), dict):
            _convert_spec(out["spec"], backend_to_v1beta1, "defaultBackend", "backend", False)
        return out

    def convert_from_version(self, obj: dict, version: str) -> dict:
        if version != "v1beta1":
            return obj
        out = copy.deepcopy(obj)
        if "apiVersion" in out:
            out["apiVersion"] = f"{GROUP}/v1"
        if isinstance(out.get("spec"), dict):
            _convert_spec(out["spec"], backend_to_v1, "backend", "defaultBackend", True)
        return out

    def validate(self, obj: dict) -> list[FieldError]:
        """ValidateIngressCreate: on create the legacy annotation must agree with the class."""
        errs = _validate_ingress(obj)
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(
            INGRESS_CLASS_ANNOTATION)
        class_name = (obj.get("spec") or {}).get("ingressClassName")
        if annotation is not None and class_name is not None and annotation != class_name:
            errs.append(E.invalid(f"annotations.{INGRESS_CLASS_ANNOTATION}", annotation,
                                  "must match `ingressClassName` when both are specified"))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += _validate_ingress(new)
        # The storage calls this for /status too; a main update has the old status by now.
        if new.get("status") != old.get("status"):
            errs += validate_load_balancer_status(new.get("status") or {})
        return errs

    def validate_status_update(self, new: dict, old: dict) -> list[FieldError]:
        """ValidateIngressStatusUpdate."""
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + validate_load_balancer_status(new.get("status") or {})

    def warnings(self, obj: dict, old: dict | None = None) -> list[str]:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if old is None and INGRESS_CLASS_ANNOTATION in annotations:
            return [f'annotation "{INGRESS_CLASS_ANNOTATION}" is deprecated, please use '
                    "'spec.ingressClassName' instead"]
        return []

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        class_name = spec.get("ingressClassName")
        return [obj["metadata"]["name"], class_name if class_name is not None else "<none>",
                _hosts_cell(spec.get("rules") or []), load_balancer_address(obj.get("status")),
                "80, 443" if spec.get("tls") else "80",
                since(obj["metadata"].get("creationTimestamp"))]
