"""Generate nanokube/api/schemas.json: the schemas of the kinds nanokube serves.

Facts come from the model classes of the official Python `kubernetes` client (`openapi_types`,
`attribute_map`, field descriptions), named as Kubernetes names them in OpenAPI
("io.k8s.api.core.v1.Service"). What the client does not carry is added from tables below:
the Go struct tags +patchMergeKey/+patchStrategy/+listType/+listMapKey, which fields are
Quantity or MicroTime, and networking.k8s.io/v1beta1 Ingress (gone from the client).

Run:  .venv/bin/python tools/gen_schemas.py      (rewrites nanokube/api/schemas.json)

Format of schemas.json:
  {"kinds":   {"<group>/<version>/<Kind>": "<type name>", ...},   (core group: "/v1/Service")
   "special": {"<type name>": <OpenAPI schema>, ...},              (IntOrString, Quantity, Time...)
   "types":   {"<type name>": {"description": str, "gvk": [[group, version, kind], ...]?,
                               "required": [json names]?, "fields": {json name: FIELD}}}}
  FIELD = {"k": "scalar"|"object"|"list"|"map"|"any",
           "t": scalar type ("string", "integer", "boolean", "number"), a type name of "types"
                or "special", or for list/map the element's,
           "f": format?, "d": description?, "ps": patch strategy?, "pk": patch merge key?,
           "lt": list type?, "lk": list map keys?}
"""
from __future__ import annotations

import json
import re
import sys
import typing
from pathlib import Path

import kubernetes.client as k8s

OUT = Path(__file__).resolve().parent.parent / "nanokube" / "api" / "schemas.json"

CORE = "io.k8s.api.core.v1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
FIELDS_V1 = f"{META}.FieldsV1"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"

# Top-level kinds: (group, version, client class of the kind, OpenAPI package).
# The List kind of each is the client class name + "List".
KINDS = [
    ("", "v1", "V1Namespace", CORE),
    ("", "v1", "V1Service", CORE),
    ("", "v1", "V1Endpoints", CORE),
    ("", "v1", "V1Pod", CORE),
    ("", "v1", "V1Node", CORE),
    ("", "v1", "V1Secret", CORE),
    ("", "v1", "V1ConfigMap", CORE),
    ("", "v1", "CoreV1Event", CORE),
    ("", "v1", "V1ServiceAccount", CORE),
    ("coordination.k8s.io", "v1", "V1Lease", "io.k8s.api.coordination.v1"),
    ("discovery.k8s.io", "v1", "V1EndpointSlice", "io.k8s.api.discovery.v1"),
    ("apps", "v1", "V1Deployment", "io.k8s.api.apps.v1"),
    ("apps", "v1", "V1ReplicaSet", "io.k8s.api.apps.v1"),
    ("apps", "v1", "V1StatefulSet", "io.k8s.api.apps.v1"),
    ("apps", "v1", "V1ControllerRevision", "io.k8s.api.apps.v1"),
    ("apps", "v1", "V1DaemonSet", "io.k8s.api.apps.v1"),
    ("batch", "v1", "V1Job", "io.k8s.api.batch.v1"),
    ("batch", "v1", "V1CronJob", "io.k8s.api.batch.v1"),
    ("networking.k8s.io", "v1", "V1Ingress", "io.k8s.api.networking.v1"),
    ("networking.k8s.io", "v1", "V1IngressClass", "io.k8s.api.networking.v1"),
]
# Kinds that are only created and answered, never stored or listed (no List kind).
REVIEW_KINDS = [
    ("authorization.k8s.io", "v1", "V1SelfSubjectAccessReview", "io.k8s.api.authorization.v1"),
    ("authorization.k8s.io", "v1", "V1SelfSubjectRulesReview", "io.k8s.api.authorization.v1"),
]
# meta/v1 kinds every group version serves (DeleteOptions is the body of DELETE).
META_KINDS = ["V1Status", "V1DeleteOptions"]

# Types of meta/v1 (everything else reachable from a core kind is core/v1).
META_TYPES = {"ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement",
              "ManagedFieldsEntry", "OwnerReference", "Status", "StatusDetails", "StatusCause",
              "DeleteOptions", "Preconditions", "Condition"}
# core/v1 types reached from other groups but not from the core kinds above.
CORE_TYPES = {"PodTemplateSpec", "PersistentVolumeClaim", "PersistentVolumeClaimStatus",
              "PersistentVolumeClaimCondition", "ModifyVolumeStatus", "VolumeHealthStatus"}

SPECIAL = {
    INT_OR_STRING: {"description": "IntOrString is a type that can hold an int32 or a string.  "
                    "When used in JSON or YAML marshalling and unmarshalling, it produces or "
                    "consumes the inner type.  This allows you to have, for example, a JSON "
                    "field that can accept a name or number.",
                    "format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-int-or-string": True},
    QUANTITY: {"description": "Quantity is a fixed-point representation of a number. It "
               "provides convenient marshaling/unmarshaling in JSON and YAML, in addition to "
               "String() and AsInt64() accessors.",
               "oneOf": [{"type": "string"}, {"type": "number"}]},
    TIME: {"description": "Time is a wrapper around time.Time which supports correct marshaling "
           "to YAML and JSON.  Wrappers are provided for many of the factory methods that the "
           "time package offers.", "type": "string", "format": "date-time"},
    MICRO_TIME: {"description": "MicroTime is version of Time with microsecond level precision.",
                 "type": "string", "format": "date-time"},
    FIELDS_V1: {"description": "FieldsV1 stores a set of fields in a data structure like a "
                "Trie, in JSON format.", "type": "object"},
    RAW_EXTENSION: {"description": "RawExtension is used to hold extensions in external "
                    "versions.", "type": "object"},
}

# (type, field) -> special type, for what the client shows as plain str / datetime / object.
QUANTITY_FIELDS = {
    ("ResourceRequirements", "limits"), ("ResourceRequirements", "requests"),
    ("VolumeResourceRequirements", "limits"), ("VolumeResourceRequirements", "requests"),
    ("NodeStatus", "capacity"), ("NodeStatus", "allocatable"),
    ("EmptyDirVolumeSource", "sizeLimit"), ("ResourceFieldSelector", "divisor"),
    ("PodSpec", "overhead"), ("NodeAllocatableMappedResources", "quantity"),
    ("NodeAllocatableOverheadResources", "perPod"),
    ("NodeAllocatableOverheadResources", "perContainer"),
    ("ContainerStatus", "allocatedResources"),
    ("PersistentVolumeClaimStatus", "capacity"),
    ("PersistentVolumeClaimStatus", "allocatedResources"),
}
MICRO_TIME_FIELDS = {("LeaseSpec", "acquireTime"), ("LeaseSpec", "renewTime"),
                     ("Event", "eventTime"), ("EventSeries", "lastObservedTime")}
FREE_FORM_FIELDS = {("ManagedFieldsEntry", "fieldsV1"): FIELDS_V1,
                    ("ControllerRevision", "data"): RAW_EXTENSION}

# Go struct tags: (type, field) -> (patchStrategy, patchMergeKey, listType, listMapKeys).
PATCH = {
    ("ObjectMeta", "finalizers"): ("merge", None, "set", None),
    ("ObjectMeta", "ownerReferences"): ("merge", "uid", "map", ["uid"]),
    ("ObjectMeta", "managedFields"): (None, None, "atomic", None),
    ("PodSpec", "volumes"): ("merge,retainKeys", "name", "map", ["name"]),
    ("PodSpec", "initContainers"): ("merge", "name", "map", ["name"]),
    ("PodSpec", "containers"): ("merge", "name", "map", ["name"]),
    ("PodSpec", "ephemeralContainers"): ("merge", "name", "map", ["name"]),
    ("PodSpec", "imagePullSecrets"): ("merge", "name", "map", ["name"]),
    ("PodSpec", "hostAliases"): ("merge", "ip", "map", ["ip"]),
    ("PodSpec", "topologySpreadConstraints"):
        ("merge", "topologyKey", "map", ["topologyKey", "whenUnsatisfiable"]),
    ("PodSpec", "resourceClaims"): ("merge,retainKeys", "name", "map", ["name"]),
    ("PodSpec", "schedulingGates"): ("merge", "name", "map", ["name"]),
    ("PodSpec", "tolerations"): (None, None, "atomic", None),
    ("Container", "ports"): ("merge", "containerPort", "map", ["containerPort", "protocol"]),
    ("Container", "env"): ("merge", "name", "map", ["name"]),
    ("Container", "volumeMounts"): ("merge", "mountPath", "map", ["mountPath"]),
    ("Container", "volumeDevices"): ("merge", "devicePath", "map", ["devicePath"]),
    ("Container", "envFrom"): (None, None, "atomic", None),
    ("EphemeralContainer", "ports"):
        ("merge", "containerPort", "map", ["containerPort", "protocol"]),
    ("EphemeralContainer", "env"): ("merge", "name", "map", ["name"]),
    ("EphemeralContainer", "volumeMounts"): ("merge", "mountPath", "map", ["mountPath"]),
    ("EphemeralContainer", "volumeDevices"): ("merge", "devicePath", "map", ["devicePath"]),
    ("PodStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("PodStatus", "podIPs"): ("merge", "ip", "map", ["ip"]),
    ("PodStatus", "hostIPs"): ("merge", "ip", "atomic", None),
    ("PodStatus", "resourceClaimStatuses"): ("merge,retainKeys", "name", "map", ["name"]),
    ("ServiceSpec", "ports"): ("merge", "port", "map", ["port", "protocol"]),
    ("ServiceSpec", "clusterIPs"): (None, None, "atomic", None),
    ("ServiceSpec", "ipFamilies"): (None, None, "atomic", None),
    ("ServiceStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("LoadBalancerStatus", "ingress"): (None, None, "atomic", None),
    ("NodeSpec", "podCIDRs"): ("merge", None, "set", None),
    ("NodeStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("NodeStatus", "addresses"): ("merge", "type", "map", ["type"]),
    ("NamespaceStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("ServiceAccount", "secrets"): ("merge", "name", "map", ["name"]),
    ("Endpoints", "subsets"): (None, None, "atomic", None),
    ("DeploymentSpec", "strategy"): ("retainKeys", None, None, None),
    ("DeploymentStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("ReplicaSetStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("StatefulSetSpec", "volumeClaimTemplates"): (None, None, "atomic", None),
    ("StatefulSetStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("DaemonSetStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("JobStatus", "conditions"): ("merge", "type", "atomic", None),
    ("PersistentVolumeClaimStatus", "conditions"): ("merge", "type", "map", ["type"]),
    ("EndpointSlice", "endpoints"): (None, None, "atomic", None),
    ("EndpointSlice", "ports"): (None, None, "atomic", None),
    ("IngressSpec", "rules"): (None, None, "atomic", None),
    ("IngressSpec", "tls"): (None, None, "atomic", None),
}

# Fields the client has that Kubernetes 1.32 has not (left out of the schemas).
NEWER_FIELDS = {("JobSpec", "scheduling")}

SCALARS = {"str": "string", "int": "integer", "bool": "boolean", "float": "number",
           "bytes": "string", "datetime": "string"}


def short_name(cls_name: str) -> str:
    """V1ServicePort -> ServicePort, CoreV1EndpointPort -> EndpointPort."""
    return re.sub(r"^([A-Z][a-z]+)*V\d+((alpha|beta)\d+)?", "", cls_name)


def description(cls) -> str:
    doc = (cls.__doc__ or "").split("Attributes:")[0]
    return " ".join(doc.split())


def model_field(cls, attr: str):
    """The pydantic field of a client attribute (None for older, non-pydantic clients)."""
    fields = getattr(cls, "model_fields", None)
    if not fields:
        return None
    return fields.get(attr) or fields.get("var_" + attr.lstrip("_"))


def field_description(cls, attr: str) -> str:
    f = model_field(cls, attr)
    return (f.description or "") if f else ""


def is_required(cls, attr: str) -> bool:
    f = model_field(cls, attr)
    return bool(f) and f.is_required()


def is_int_or_string(cls, attr: str) -> bool:
    f = model_field(cls, attr)
    if f is None:
        return True
    args = typing.get_args(f.annotation)
    flat = {typing.get_origin(a) and typing.get_args(a)[0] or a for a in args}
    return int in flat and str in flat


class Generator:
    def __init__(self):
        self.package: dict[str, str] = {}     # client class -> OpenAPI package
        self.types: dict[str, dict] = {}
        self.kinds: dict[str, str] = {}
        self.used_tags: set = set()

    def type_name(self, cls_name: str) -> str:
        return f"{self.package[cls_name]}.{short_name(cls_name)}"

    def assign(self, cls_name: str, package: str) -> None:
        """Give every class reachable from cls_name a package (first come, first served)."""
        if cls_name in self.package:
            return
        short = short_name(cls_name)
        if short in META_TYPES:
            package = META
        elif short in CORE_TYPES:
            package = CORE
        self.package[cls_name] = package
        for type_str in getattr(k8s, cls_name).openapi_types.values():
            for ref in re.findall(r"\w+", type_str):
                if ref not in ("List", "Dict", "str", "int", "bool", "float", "bytes",
                               "datetime", "object") and hasattr(k8s, ref):
                    self.assign(ref, package)

    def convert_field(self, cls, short: str, attr: str, type_str: str) -> dict:
        json_name = cls.attribute_map[attr]
        out: dict = {}
        if m := re.fullmatch(r"List\[(.+)\]", type_str):
            out["k"], elem = "list", m.group(1)
        elif m := re.fullmatch(r"Dict\[str, (.+)\]", type_str):
            out["k"], elem = "map", m.group(1)
        else:
            out["k"], elem = None, type_str
        key = (short, json_name)
        if key in QUANTITY_FIELDS:
            self.used_tags.add(key)
            assert elem == "str", key
            elem_kind, t = "any", QUANTITY
        elif key in MICRO_TIME_FIELDS:
            self.used_tags.add(key)
            assert elem == "datetime", key
            elem_kind, t = "any", MICRO_TIME
        elif key in FREE_FORM_FIELDS:
            elem_kind, t = "any", FREE_FORM_FIELDS[key]
        elif elem == "datetime":
            elem_kind, t = "any", TIME
        elif elem == "object":
            assert is_int_or_string(cls, attr), key
            elem_kind, t = "any", INT_OR_STRING
        elif elem in SCALARS:
            elem_kind, t = "scalar", SCALARS[elem]
            if elem == "bytes":
                out["f"] = "byte"
        else:
            elem_kind, t = "object", self.type_name(elem)
        out["k"] = out["k"] or elem_kind
        out["t"] = t
        if d := field_description(cls, attr):
            out["d"] = d
        if key in PATCH:
            self.used_tags.add(key)
            ps, pk, lt, lk = PATCH[key]
            for name, value in (("ps", ps), ("pk", pk), ("lt", lt), ("lk", lk)):
                if value:
                    out[name] = value
        return out

    def convert_type(self, cls_name: str) -> None:
        name = self.type_name(cls_name)
        if name in self.types:
            return
        cls = getattr(k8s, cls_name)
        short = short_name(cls_name)
        entry: dict = {"description": description(cls), "fields": {}}
        self.types[name] = entry
        required = []
        for attr, type_str in cls.openapi_types.items():
            if (short, cls.attribute_map[attr]) in NEWER_FIELDS:
                continue
            f = self.convert_field(cls, short, attr, type_str)
            entry["fields"][cls.attribute_map[attr]] = f
            if is_required(cls, attr):
                required.append(cls.attribute_map[attr])
            if f["k"] in ("object", "list", "map") and f["t"].startswith("io.k8s.") \
                    and f["t"] not in SPECIAL:
                for ref in re.findall(r"\w+", type_str):
                    if ref in self.package:
                        self.convert_type(ref)
        if required:
            entry["required"] = required

    def add_kind(self, group: str, version: str, cls_name: str, with_list: bool = True) -> None:
        for cls in (cls_name, cls_name + "List") if with_list else (cls_name,):
            name = self.type_name(cls)
            self.convert_type(cls)
            kind = short_name(cls)
            self.types[name].setdefault("gvk", [[group, version, kind]])
            self.kinds[f"{group}/{version}/{kind}"] = name

    def run(self) -> dict:
        # Core kinds first, so that core types reached from other groups stay core.
        for group, version, cls, package in KINDS:
            self.assign(cls, package)
            self.assign(cls + "List", package)
        for cls in META_KINDS:
            self.assign(cls, META)
        for _, _, cls, package in REVIEW_KINDS:
            self.assign(cls, package)
        for group, version, cls, _ in KINDS:
            self.add_kind(group, version, cls)
        for group, version, cls, _ in REVIEW_KINDS:
            self.add_kind(group, version, cls, with_list=False)
        groups = sorted({(g, v) for g, v, _, _ in KINDS + REVIEW_KINDS} | {("networking.k8s.io", "v1beta1"),
                                                           (METALLB_GROUP, METALLB_VERSION),
                                                           (CERT_MANAGER_GROUP, CERT_MANAGER_VERSION)})
        for cls in META_KINDS:
            self.convert_type(cls)
            kind = short_name(cls)
            name = self.type_name(cls)
            # DeleteOptions is the body of DELETE in every group; Status is core only
            served_in = groups if kind == "DeleteOptions" else [("", "v1")]
            self.types[name]["gvk"] = [[g, v, kind] for g, v in served_in]
            for g, v in groups:
                self.kinds[f"{g}/{v}/{kind}"] = name
        add_ingress_v1beta1(self)
        add_metallb(self)
        add_cert_manager(self)
        unused = (set(PATCH) | QUANTITY_FIELDS | MICRO_TIME_FIELDS) - self.used_tags
        assert not unused, f"patch tags for unknown fields: {unused}"
        return {"kinds": dict(sorted(self.kinds.items())), "special": SPECIAL,
                "types": dict(sorted(self.types.items()))}


def add_ingress_v1beta1(gen: Generator) -> None:
    """networking.k8s.io/v1beta1 Ingress (removed in 1.22, gone from the client): by hand."""
    pkg = "io.k8s.api.networking.v1beta1"
    v1 = "io.k8s.api.networking.v1"

    def s(d=""):
        return {"k": "scalar", "t": "string", **({"d": d} if d else {})}

    def obj(t, d=""):
        return {"k": "object", "t": t, **({"d": d} if d else {})}

    def lst(t, d=""):
        return {"k": "list", "t": t, "lt": "atomic", **({"d": d} if d else {})}

    meta = gen.types[f"{v1}.Ingress"]["fields"]
    gen.types[f"{pkg}.Ingress"] = {
        "description": "Ingress is a collection of rules that allow inbound connections to "
                       "reach the endpoints defined by a backend.",
        "gvk": [["networking.k8s.io", "v1beta1", "Ingress"]],
        "fields": {"apiVersion": meta["apiVersion"], "kind": meta["kind"],
                   "metadata": meta["metadata"],
                   "spec": obj(f"{pkg}.IngressSpec", "Spec is the desired state of the Ingress."),
                   "status": obj(f"{v1}.IngressStatus",
                                 "Status is the current state of the Ingress.")}}
    list_meta = gen.types[f"{v1}.IngressList"]["fields"]
    gen.types[f"{pkg}.IngressList"] = {
        "description": "IngressList is a collection of Ingress.",
        "gvk": [["networking.k8s.io", "v1beta1", "IngressList"]], "required": ["items"],
        "fields": {"apiVersion": list_meta["apiVersion"], "kind": list_meta["kind"],
                   "metadata": list_meta["metadata"],
                   "items": {"k": "list", "t": f"{pkg}.Ingress",
                             "d": "Items is the list of Ingress."}}}
    gen.types[f"{pkg}.IngressSpec"] = {
        "description": "IngressSpec describes the Ingress the user wishes to exist.",
        "fields": {"backend": obj(f"{pkg}.IngressBackend", "A default backend capable of "
                                  "servicing requests that don't match any rule."),
                   "ingressClassName": s("IngressClassName is the name of the IngressClass "
                                         "cluster resource."),
                   "rules": lst(f"{pkg}.IngressRule", "A list of host rules used to configure "
                                "the Ingress."),
                   "tls": lst(f"{pkg}.IngressTLS", "TLS configuration.")}}
    gen.types[f"{pkg}.IngressTLS"] = {
        "description": "IngressTLS describes the transport layer security associated with an "
                       "Ingress.",
        "fields": {"hosts": {"k": "list", "t": "string", "lt": "atomic",
                             "d": "Hosts are a list of hosts included in the TLS certificate."},
                   "secretName": s("SecretName is the name of the secret used to terminate "
                                   "TLS traffic on port 443.")}}
    gen.types[f"{pkg}.IngressRule"] = {
        "description": "IngressRule represents the rules mapping the paths under a specified "
                       "host to the related backend services.",
        "fields": {"host": s("Host is the fully qualified domain name of a network host."),
                   "http": obj(f"{pkg}.HTTPIngressRuleValue")}}
    gen.types[f"{pkg}.HTTPIngressRuleValue"] = {
        "description": "HTTPIngressRuleValue is a list of http selectors pointing to backends.",
        "required": ["paths"],
        "fields": {"paths": lst(f"{pkg}.HTTPIngressPath",
                                "A collection of paths that map requests to backends.")}}
    gen.types[f"{pkg}.HTTPIngressPath"] = {
        "description": "HTTPIngressPath associates a path with a backend.",
        "required": ["backend"],
        "fields": {"path": s("Path is matched against the path of an incoming request."),
                   "pathType": s("PathType determines the interpretation of the Path "
                                 "matching: Exact, Prefix or ImplementationSpecific."),
                   "backend": obj(f"{pkg}.IngressBackend", "Backend defines the referenced "
                                  "service endpoint to which the traffic will be forwarded to.")}}
    gen.types[f"{pkg}.IngressBackend"] = {
        "description": "IngressBackend describes all endpoints for a given service and port.",
        "fields": {"serviceName": s("Specifies the name of the referenced service."),
                   "servicePort": {"k": "any", "t": INT_OR_STRING,
                                   "d": "Specifies the port of the referenced service."},
                   "resource": obj(f"{CORE}.TypedLocalObjectReference",
                                   "Resource is an ObjectRef to another Kubernetes resource in "
                                   "the namespace of the Ingress object.")}}
    for kind in ("Ingress", "IngressList"):
        gen.kinds[f"networking.k8s.io/v1beta1/{kind}"] = f"{pkg}.{kind}"
    gen.kinds = dict(sorted(gen.kinds.items()))
    gen.types = dict(sorted(gen.types.items()))


def crd_kind(gen: Generator, pkg: str, group: str, version: str, name: str,
             description: str, spec: dict, status: dict) -> None:
    """A custom resource's kind and its List, with the standard apiVersion/kind/metadata."""
    meta = gen.types["io.k8s.api.networking.v1.Ingress"]["fields"]
    list_meta = gen.types["io.k8s.api.networking.v1.IngressList"]["fields"]
    gen.types[f"{pkg}.{name}"] = {
        "description": description, "gvk": [[group, version, name]],
        "fields": {"apiVersion": meta["apiVersion"], "kind": meta["kind"],
                   "metadata": meta["metadata"], "spec": spec, "status": status}}
    gen.types[f"{pkg}.{name}List"] = {
        "description": f"{name}List is a list of {name}.",
        "gvk": [[group, version, f"{name}List"]], "required": ["items"],
        "fields": {"apiVersion": list_meta["apiVersion"], "kind": list_meta["kind"],
                   "metadata": list_meta["metadata"],
                   "items": {"k": "list", "t": f"{pkg}.{name}",
                             "d": f"List of {name.lower()}s."}}}
    for k in (name, f"{name}List"):
        gen.kinds[f"{group}/{version}/{k}"] = f"{pkg}.{k}"


METALLB_GROUP = "metallb.io"
METALLB_VERSION = "v1beta1"


def add_metallb(gen: Generator) -> None:
    """metallb.io/v1beta1 IPAddressPool and L2Advertisement (MetalLB's CRDs, not in the client):
    by hand, named as a CRD's published OpenAPI names them (reversed group)."""
    pkg = "io.metallb.v1beta1"
    selector = f"{META}.LabelSelector"

    def scalar(t, d, fmt=""):
        return {"k": "scalar", "t": t, "d": d, **({"f": fmt} if fmt else {})}

    def strings(d):
        return {"k": "list", "t": "string", "lt": "atomic", "d": d}

    def selectors(d):
        return {"k": "list", "t": selector, "lt": "atomic", "d": d}

    def obj(t, d):
        return {"k": "object", "t": t, "d": d}

    def kind(name, description, has_status_fields):
        crd_kind(gen, pkg, METALLB_GROUP, METALLB_VERSION, name, description,
                 obj(f"{pkg}.{name}Spec", f"Spec is the desired state of the {name}."),
                 obj(f"{pkg}.{name}Status", f"{name}Status defines the observed state of "
                     f"{name}."))
        gen.types[f"{pkg}.{name}Status"] = {
            "description": f"{name}Status defines the observed state of {name}.",
            "fields": has_status_fields}

    counter = "IPAddressPoolStatus reports the number of assigned and available addresses."
    kind("IPAddressPool", "IPAddressPool represents a pool of IP addresses that can be allocated "
         "to LoadBalancer services.",
         {f"{state}IPv{v}": scalar("integer", counter, "int64")
          for state in ("assigned", "available") for v in (4, 6)})
    gen.types[f"{pkg}.IPAddressPoolSpec"] = {
        "description": "IPAddressPoolSpec defines the desired state of IPAddressPool.",
        "required": ["addresses"],
        "fields": {
            "addresses": strings("A list of IP address ranges over which MetalLB has authority. "
                                 "You can list multiple ranges in a single pool, they will all "
                                 "share the same settings. Each range can be either a CIDR "
                                 "prefix, or an explicit start-end range of IPs."),
            "autoAssign": scalar("boolean", "AutoAssign flag used to prevent MetallB from "
                                 "automatic allocation for a pool."),
            "avoidBuggyIPs": scalar("boolean", "AvoidBuggyIPs prevents addresses ending with "
                                    ".0 and .255 to be used by a pool."),
            "serviceAllocation": obj(f"{pkg}.ServiceAllocation", "AllocateTo makes ip pool "
                                     "allocation to specific namespace and/or service. The "
                                     "controller will use the pool with lowest value of "
                                     "priority in case of multiple matches. A pool with no "
                                     "priority set will be used only if the pools with "
                                     "priority can't be used.")}}
    gen.types[f"{pkg}.ServiceAllocation"] = {
        "description": "ServiceAllocation defines ip pool allocation to namespace and services.",
        "fields": {
            "priority": scalar("integer", "Priority priority given for ip pool while ip "
                               "allocation on a service."),
            "namespaces": strings("Namespaces list of namespace(s) on which ip pool can be "
                                  "attached."),
            "namespaceSelectors": selectors("NamespaceSelectors list of label selectors to "
                                            "select namespace(s) for ip pool, an alternative "
                                            "to using namespace list."),
            "serviceSelectors": selectors("ServiceSelectors list of label selector to select "
                                          "service(s) for which ip pool can be used for ip "
                                          "allocation.")}}
    kind("L2Advertisement", "L2Advertisement allows to advertise the LoadBalancer IPs provided "
         "by the selected pools via L2.", {})
    gen.types[f"{pkg}.L2AdvertisementSpec"] = {
        "description": "L2AdvertisementSpec defines the desired state of L2Advertisement.",
        "fields": {
            "ipAddressPools": strings("The list of IPAddressPools to advertise via this "
                                      "advertisement, selected by name."),
            "ipAddressPoolSelectors": selectors("A selector for the IPAddressPools which would "
                                                "get advertised via this advertisement. If no "
                                                "IPAddressPool is selected by this or by the "
                                                "list, the advertisement is applied to all the "
                                                "IPAddressPools."),
            "nodeSelectors": selectors("NodeSelectors allows to limit the nodes to announce as "
                                       "next hops for the LoadBalancer IP. When empty, all the "
                                       "nodes are announced as next hops."),
            "interfaces": strings("A list of interfaces to announce from. The LB IP will be "
                                  "announced only from these interfaces. If the field is not "
                                  "set, we advertise from all the interfaces on the host.")}}
    gen.kinds = dict(sorted(gen.kinds.items()))
    gen.types = dict(sorted(gen.types.items()))


CERT_MANAGER_GROUP = "cert-manager.io"
CERT_MANAGER_VERSION = "v1"


def add_cert_manager(gen: Generator) -> None:
    """cert-manager.io/v1 Certificate, Issuer and ClusterIssuer (cert-manager's CRDs, not in the
    client): by hand, named as the CRDs' published OpenAPI names them. The ACME solvers are kept
    as free-form objects (their schema is large and nothing here descends into it)."""
    pkg = "io.cert-manager.v1"
    group, version = CERT_MANAGER_GROUP, CERT_MANAGER_VERSION

    def scalar(t, d, fmt=""):
        return {"k": "scalar", "t": t, "d": d, **({"f": fmt} if fmt else {})}

    def strings(d):
        return {"k": "list", "t": "string", "lt": "atomic", "d": d}

    def obj(t, d):
        return {"k": "object", "t": t, "d": d}

    def time(d):
        return {"k": "any", "t": TIME, "d": d}

    def kind(name, description, spec_type):
        crd_kind(gen, pkg, group, version, name, description,
                 obj(f"{pkg}.{spec_type}Spec", f"Desired state of the {name} resource."),
                 obj(f"{pkg}.{spec_type}Status", f"Status of the {name}. This is set and "
                     "managed automatically."))
        gen.types[f"{pkg}.{name}"]["required"] = ["spec"]

    def conditions(t, d):
        return {"k": "list", "t": t, "lt": "map", "lk": ["type"], "d": d}

    condition = {
        "type": scalar("string", "Type of the condition, known values are (`Ready`, "
                       "`Issuing`)."),
        "status": scalar("string", "Status of the condition, one of (`True`, `False`, "
                         "`Unknown`)."),
        "reason": scalar("string", "Reason is a brief machine readable explanation for the "
                         "condition's last transition."),
        "message": scalar("string", "Message is a human readable description of the details "
                          "of the last transition, complementing reason."),
        "lastTransitionTime": time("LastTransitionTime is the timestamp corresponding to the "
                                   "last status change of this condition."),
        "observedGeneration": scalar("integer", "If set, this represents the "
                                     ".metadata.generation that the condition was set based "
                                     "upon.", "int64")}
    ref = {"name": scalar("string", "Name of the resource being referred to."),
           "kind": scalar("string", "Kind of the resource being referred to."),
           "group": scalar("string", "Group of the resource being referred to.")}

    kind("Certificate", "A Certificate resource should be created to ensure an up to date and "
         "signed X.509 certificate is stored in the Kubernetes Secret resource named in "
         "`spec.secretName`.", "Certificate")
    gen.types[f"{pkg}.CertificateSpec"] = {
        "description": "Specification of the desired state of the Certificate resource.",
        "required": ["issuerRef", "secretName"],
        "fields": {
            "secretName": scalar("string", "Name of the Secret resource that will be "
                                 "automatically created and managed by this Certificate "
                                 "resource."),
            "issuerRef": obj(f"{pkg}.IssuerReference", "Reference to the issuer responsible "
                             "for issuing the certificate."),
            "commonName": scalar("string", "Requested common name X509 certificate subject "
                                 "attribute."),
            "dnsNames": strings("Requested DNS subject alternative names."),
            "ipAddresses": strings("Requested IP address subject alternative names."),
            "uris": strings("Requested URI subject alternative names."),
            "emailAddresses": strings("Requested email subject alternative names."),
            "duration": scalar("string", "Requested 'duration' (i.e. lifetime) of the "
                               "Certificate. Default 2160h (90d); minimum 1h."),
            "renewBefore": scalar("string", "How long before the currently issued "
                                  "certificate's expiry cert-manager should renew it."),
            "renewBeforePercentage": scalar("integer", "renewBeforePercentage is like "
                                            "renewBefore, except it is a relative percentage "
                                            "rather than an absolute duration.", "int32"),
            "isCA": scalar("boolean", "Requested basic constraints isCA value."),
            "usages": strings("Requested key usages and extended key usages."),
            "privateKey": obj(f"{pkg}.CertificatePrivateKey", "Private key options."),
            "subject": obj(f"{pkg}.X509Subject", "Requested set of X509 certificate subject "
                           "attributes."),
            "secretTemplate": obj(f"{pkg}.CertificateSecretTemplate", "Defines annotations "
                                  "and labels to be copied to the Certificate's Secret."),
            "revisionHistoryLimit": scalar("integer", "The maximum number of "
                                           "CertificateRequest revisions that are maintained "
                                           "in the Certificate's history.", "int32")}}
    gen.types[f"{pkg}.IssuerReference"] = {
        "description": "IssuerReference is a reference to a certificate issuer object with a "
                       "given name, kind and group.", "required": ["name"], "fields": ref}
    gen.types[f"{pkg}.CertificatePrivateKey"] = {
        "description": "CertificatePrivateKey contains configuration options for private keys "
                       "used by the Certificate controller.",
        "fields": {"algorithm": scalar("string", "Algorithm is the private key algorithm of "
                                       "the corresponding private key: RSA, ECDSA or Ed25519."),
                   "encoding": scalar("string", "The private key cryptography standards "
                                      "(PKCS) encoding: PKCS1 or PKCS8."),
                   "size": scalar("integer", "Size is the key bit size.", "int32"),
                   "rotationPolicy": scalar("string", "RotationPolicy controls how private "
                                            "keys should be regenerated: Never or Always.")}}
    gen.types[f"{pkg}.X509Subject"] = {
        "description": "X509Subject Full X509 name specification.",
        "fields": {name: strings(f"{title} to be used on the Certificate.")
                   for name, title in (("organizations", "Organizations"),
                                       ("countries", "Countries"),
                                       ("organizationalUnits", "Organizational Units"),
                                       ("localities", "Cities"), ("provinces", "State/Provinces"),
                                       ("streetAddresses", "Street addresses"),
                                       ("postalCodes", "Postal codes"))}
        | {"serialNumber": scalar("string", "Serial number to be used on the Certificate.")}}
    gen.types[f"{pkg}.CertificateSecretTemplate"] = {
        "description": "CertificateSecretTemplate defines the default labels and annotations "
                       "to be copied to the Kubernetes Secret resource named in "
                       "`CertificateSpec.secretName`.",
        "fields": {"annotations": {"k": "map", "t": "string", "d": "Annotations is a key value "
                                   "map to be copied to the target Kubernetes Secret."},
                   "labels": {"k": "map", "t": "string", "d": "Labels is a key value map to be "
                              "copied to the target Kubernetes Secret."}}}
    gen.types[f"{pkg}.CertificateCondition"] = {
        "description": "CertificateCondition contains condition information for a "
                       "Certificate.", "required": ["status", "type"], "fields": condition}
    gen.types[f"{pkg}.CertificateStatus"] = {
        "description": "CertificateStatus defines the observed state of Certificate",
        "fields": {
            "conditions": conditions(f"{pkg}.CertificateCondition", "List of status conditions "
                                     "to indicate the status of certificates. Known condition "
                                     "types are `Ready` and `Issuing`."),
            "notBefore": time("The time after which the certificate stored in the secret named "
                              "by this resource in `spec.secretName` is valid."),
            "notAfter": time("The expiration time of the certificate stored in the secret "
                             "named by this resource in `spec.secretName`."),
            "renewalTime": time("RenewalTime is the time at which the certificate will be next "
                                "renewed."),
            "revision": scalar("integer", "The current 'revision' of the certificate as issued.",
                               "int32"),
            "lastFailureTime": time("LastFailureTime is set only if the latest issuance for "
                                    "this Certificate failed and contains the time of the "
                                    "failure."),
            "failedIssuanceAttempts": scalar("integer", "The number of continuous failed "
                                             "issuance attempts up till now.", "int32"),
            "nextPrivateKeySecretName": scalar("string", "The name of the Secret resource "
                                               "containing the private key to be used for the "
                                               "next certificate iteration.")}}

    for name in ("Issuer", "ClusterIssuer"):
        kind(name, f"An {name} represents a certificate issuing authority which can be "
             "referenced as part of `issuerRef` fields.", "Issuer")
    gen.types[f"{pkg}.IssuerSpec"] = {
        "description": "Desired state of the Issuer resource.",
        "fields": {"selfSigned": obj(f"{pkg}.SelfSignedIssuer", "SelfSigned configures this "
                                     "issuer to 'self sign' certificates using the private key "
                                     "used to create the CertificateRequest object."),
                   "ca": obj(f"{pkg}.CAIssuer", "CA configures this issuer to sign certificates "
                             "using a signing CA keypair stored in a Secret resource."),
                   "acme": obj(f"{pkg}.ACMEIssuer", "ACME configures this issuer to communicate "
                               "with a RFC8555 (ACME) server to obtain signed x509 "
                               "certificates.")}}
    gen.types[f"{pkg}.SelfSignedIssuer"] = {
        "description": "Configures an issuer to 'self sign' certificates using the private key "
                       "used to create the CertificateRequest object.",
        "fields": {"crlDistributionPoints": strings("The CRL distribution points is an X.509 "
                                                    "v3 certificate extension.")}}
    gen.types[f"{pkg}.CAIssuer"] = {
        "description": "CAIssuer configures an issuer that signs certificates using a signing "
                       "CA keypair.", "required": ["secretName"],
        "fields": {"secretName": scalar("string", "SecretName is the name of the secret used "
                                        "to sign Certificates issued by this Issuer."),
                   "crlDistributionPoints": strings("The CRL distribution points is an X.509 "
                                                    "v3 certificate extension."),
                   "ocspServers": strings("The OCSP server list is an X.509 v3 extension.")}}
    gen.types[f"{pkg}.ACMEIssuer"] = {
        "description": "ACMEIssuer contains the specification for an ACME issuer.",
        "required": ["privateKeySecretRef", "server"],
        "fields": {
            "server": scalar("string", "Server is the URL used to access the ACME server's "
                             "'directory' endpoint."),
            "email": scalar("string", "Email is the email address to be associated with the "
                            "ACME account."),
            "privateKeySecretRef": obj(f"{pkg}.SecretKeySelector", "PrivateKey is the name of "
                                       "a Kubernetes Secret resource that will be used to store "
                                       "the automatically generated ACME account private key."),
            "caBundle": scalar("string", "Base64-encoded bundle of PEM CAs which can be used "
                               "to validate the certificate chain presented by the ACME "
                               "server.", "byte"),
            "skipTLSVerify": scalar("boolean", "INSECURE: Enables or disables validation of "
                                    "the ACME server TLS certificate."),
            "solvers": {"k": "any", "t": RAW_EXTENSION,
                        "d": "Solvers is a list of challenge solvers that will be used to "
                             "solve ACME challenges for the matching domains."},
            "preferredChain": scalar("string", "PreferredChain is the chain to use if the "
                                     "ACME server outputs multiple."),
            "disableAccountKeyGeneration": scalar("boolean", "Enables or disables generating "
                                                  "a new ACME account key.")}}
    gen.types[f"{pkg}.SecretKeySelector"] = {
        "description": "A reference to a specific 'key' within a Secret resource.",
        "required": ["name"],
        "fields": {"name": scalar("string", "Name of the resource being referred to."),
                   "key": scalar("string", "The key of the entry in the Secret resource's "
                                 "`data` field to be used.")}}
    gen.types[f"{pkg}.IssuerCondition"] = {
        "description": "IssuerCondition contains condition information for an Issuer.",
        "required": ["status", "type"], "fields": condition}
    gen.types[f"{pkg}.IssuerStatus"] = {
        "description": "Status of the Issuer. This is set and managed automatically.",
        "fields": {"conditions": conditions(f"{pkg}.IssuerCondition", "List of status "
                                            "conditions to indicate the status of an Issuer. "
                                            "Known condition types are `Ready`."),
                   "acme": obj(f"{pkg}.ACMEIssuerStatus", "ACME specific status options.")}}
    gen.types[f"{pkg}.ACMEIssuerStatus"] = {
        "description": "ACMEIssuerStatus holds the status of an ACME account.",
        "fields": {"uri": scalar("string", "URI is the unique account identifier, which can "
                                 "also be used to retrieve account details from the CA."),
                   "lastRegisteredEmail": scalar("string", "LastRegisteredEmail is the email "
                                                 "associated with the latest registered ACME "
                                                 "account.")}}
    gen.kinds = dict(sorted(gen.kinds.items()))
    gen.types = dict(sorted(gen.types.items()))


def dump(data: dict) -> str:
    """Compact JSON with one kind/type per line, so that diffs stay readable."""
    lines = ["{"]
    for i, section in enumerate(("kinds", "special", "types")):
        lines.append(f"{json.dumps(section)}:{{")
        items = list(data[section].items())
        for j, (key, value) in enumerate(items):
            sep = "," if j < len(items) - 1 else ""
            lines.append(f"{json.dumps(key)}:{json.dumps(value, separators=(',', ':'))}{sep}")
        lines.append("}," if i < 2 else "}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    data = Generator().run()
    OUT.write_text(dump(data))
    print(f"wrote {OUT} ({len(data['types'])} types, {OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
