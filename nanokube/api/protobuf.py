"""Decoding of Kubernetes protobuf request bodies (application/vnd.kubernetes.protobuf) into the
JSON-shaped dicts the rest of the server works with.

client-go's typed clients (and so `kubectl create namespace/service/deployment/...`) send objects
as a runtime.Unknown envelope: the magic prefix b"k8s\\x00", then
Unknown{typeMeta(1){apiVersion(1), kind(2)}, raw(2), contentEncoding(3), contentType(4)} where
raw is the object's own protobuf message (k8s.io/api generated.proto).

Go's generated Marshal writes every non-pointer field, zero or not, so a zero value of a
non-pointer scalar field means the same as an absent one (exactly as for the Go struct) and is
left out of the result, like encoding/json's omitempty would. Pointer fields (`ptr=True`,
`optional` in Go) keep their zero values. Field numbers not in the tables are skipped.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass

MAGIC = b"k8s\x00"

# wire types
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """The body is not a well-formed protobuf message of the expected type."""


# --- wire format ---------------------------------------------------------------------------------

def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at pos and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("unexpected EOF")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("integer overflow")


def iter_fields(data: bytes):
    """Yield (field number, wire type, value) for each field of a message: an int for varint
    and fixed fields, bytes for length-delimited ones."""
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("illegal tag 0")
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == FIXED64:
            if pos + 8 > len(data):
                raise ProtobufError("unexpected EOF")
            value, pos = int.from_bytes(data[pos:pos + 8], "little"), pos + 8
        elif wire == FIXED32:
            if pos + 4 > len(data):
                raise ProtobufError("unexpected EOF")
            value, pos = int.from_bytes(data[pos:pos + 4], "little"), pos + 4
        elif wire == LENGTH:
            length, pos = read_varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("unexpected EOF")
            value, pos = data[pos:pos + length], pos + length
        else:  # groups (3, 4) are not used by Kubernetes
            raise ProtobufError(f"illegal wireType {wire} for field {number}")
        yield number, wire, value


def _signed(value: int) -> int:
    """int32/int64 are sent as two's-complement 64-bit varints."""
    return value - (1 << 64) if value >= 1 << 63 else value


# --- type tables ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One field of a message. kind: "str", "bytes" (base64 in JSON), "int", "bool", "msg"
    (type names a table), "inline" (an embedded struct whose fields JSON shows in the parent),
    "map" (type: "str", "bytes" or a table name for the values), "ios" (IntOrString), "time"
    (metav1.Time), "qty" (resource.Quantity), "json" (FieldsV1: raw JSON)."""
    name: str
    kind: str
    type: str | None = None
    repeated: bool = False
    ptr: bool = False


def _f(name, kind="str", type=None, rep=False, ptr=False) -> Field:
    return Field(name, kind, type, rep, ptr)


def _msg(name, type, rep=False, ptr=False) -> Field:
    return Field(name, "msg", type, rep, ptr)


_STR_MAP = "str"

TYPES: dict[str, dict[int, Field]] = {
    # --- apimachinery meta/v1 ---
    "ObjectMeta": {
        1: _f("name"), 2: _f("generateName"), 3: _f("namespace"), 4: _f("selfLink"),
        5: _f("uid"), 6: _f("resourceVersion"), 7: _f("generation", "int"),
        8: _f("creationTimestamp", "time"), 9: _f("deletionTimestamp", "time", ptr=True),
        10: _f("deletionGracePeriodSeconds", "int", ptr=True),
        11: _f("labels", "map", _STR_MAP), 12: _f("annotations", "map", _STR_MAP),
        13: _msg("ownerReferences", "OwnerReference", rep=True),
        14: _f("finalizers", rep=True),
        17: _msg("managedFields", "ManagedFieldsEntry", rep=True),
    },
    "OwnerReference": {
        1: _f("kind"), 3: _f("name"), 4: _f("uid"), 5: _f("apiVersion"),
        6: _f("controller", "bool", ptr=True), 7: _f("blockOwnerDeletion", "bool", ptr=True),
    },
    "ManagedFieldsEntry": {
        1: _f("manager"), 2: _f("operation"), 3: _f("apiVersion"),
        4: _f("time", "time", ptr=True), 6: _f("fieldsType"), 7: _f("fieldsV1", "json", ptr=True),
        8: _f("subresource"),
    },
    "LabelSelector": {
        1: _f("matchLabels", "map", _STR_MAP),
        2: _msg("matchExpressions", "LabelSelectorRequirement", rep=True),
    },
    "LabelSelectorRequirement": {1: _f("key"), 2: _f("operator"), 3: _f("values", rep=True)},
    "Condition": {
        1: _f("type"), 2: _f("status"), 3: _f("observedGeneration", "int"),
        4: _f("lastTransitionTime", "time"), 5: _f("reason"), 6: _f("message"),
    },
    # --- core/v1 shared ---
    "LocalObjectReference": {1: _f("name")},
    "ObjectReference": {
        1: _f("kind"), 2: _f("namespace"), 3: _f("name"), 4: _f("uid"), 5: _f("apiVersion"),
        6: _f("resourceVersion"), 7: _f("fieldPath"),
    },
    # --- Namespace ---
    "Namespace": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "NamespaceSpec"),
                  3: _msg("status", "NamespaceStatus")},
    "NamespaceSpec": {1: _f("finalizers", rep=True)},
    "NamespaceStatus": {1: _f("phase"), 2: _msg("conditions", "NamespaceCondition", rep=True)},
    "NamespaceCondition": {1: _f("type"), 2: _f("status"), 4: _f("lastTransitionTime", "time"),
                           5: _f("reason"), 6: _f("message")},
    # --- Service ---
    "Service": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "ServiceSpec"),
                3: _msg("status", "ServiceStatus")},
    "ServiceSpec": {
        1: _msg("ports", "ServicePort", rep=True), 2: _f("selector", "map", _STR_MAP),
        3: _f("clusterIP"), 4: _f("type"), 5: _f("externalIPs", rep=True),
        7: _f("sessionAffinity"), 8: _f("loadBalancerIP"),
        9: _f("loadBalancerSourceRanges", rep=True), 10: _f("externalName"),
        11: _f("externalTrafficPolicy"), 12: _f("healthCheckNodePort", "int"),
        13: _f("publishNotReadyAddresses", "bool"),
        14: _msg("sessionAffinityConfig", "SessionAffinityConfig", ptr=True),
        17: _f("ipFamilyPolicy", ptr=True), 18: _f("clusterIPs", rep=True),
        19: _f("ipFamilies", rep=True), 20: _f("allocateLoadBalancerNodePorts", "bool", ptr=True),
        21: _f("loadBalancerClass", ptr=True), 22: _f("internalTrafficPolicy", ptr=True),
        23: _f("trafficDistribution", ptr=True),
    },
    "ServicePort": {
        1: _f("name"), 2: _f("protocol"), 3: _f("port", "int"), 4: _f("targetPort", "ios"),
        5: _f("nodePort", "int"), 6: _f("appProtocol", ptr=True),
    },
    "SessionAffinityConfig": {1: _msg("clientIP", "ClientIPConfig", ptr=True)},
    "ClientIPConfig": {1: _f("timeoutSeconds", "int", ptr=True)},
    "ServiceStatus": {1: _msg("loadBalancer", "LoadBalancerStatus"),
                      2: _msg("conditions", "Condition", rep=True)},
    "LoadBalancerStatus": {1: _msg("ingress", "LoadBalancerIngress", rep=True)},
    "LoadBalancerIngress": {1: _f("ip"), 2: _f("hostname"), 3: _f("ipMode", ptr=True),
                            4: _msg("ports", "PortStatus", rep=True)},
    "PortStatus": {1: _f("port", "int"), 2: _f("protocol"), 3: _f("error", ptr=True)},
    # --- Deployment (apps/v1) ---
    "Deployment": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "DeploymentSpec"),
                   3: _msg("status", "DeploymentStatus")},
    "DeploymentSpec": {
        1: _f("replicas", "int", ptr=True), 2: _msg("selector", "LabelSelector", ptr=True),
        3: _msg("template", "PodTemplateSpec"), 4: _msg("strategy", "DeploymentStrategy"),
        5: _f("minReadySeconds", "int"), 6: _f("revisionHistoryLimit", "int", ptr=True),
        7: _f("paused", "bool"), 9: _f("progressDeadlineSeconds", "int", ptr=True),
    },
    "DeploymentStrategy": {1: _f("type"),
                           2: _msg("rollingUpdate", "RollingUpdateDeployment", ptr=True)},
    "RollingUpdateDeployment": {1: _f("maxUnavailable", "ios", ptr=True),
                                2: _f("maxSurge", "ios", ptr=True)},
    "DeploymentStatus": {
        1: _f("observedGeneration", "int"), 2: _f("replicas", "int"),
        3: _f("updatedReplicas", "int"), 4: _f("availableReplicas", "int"),
        5: _f("unavailableReplicas", "int"),
        6: _msg("conditions", "DeploymentCondition", rep=True), 7: _f("readyReplicas", "int"),
        8: _f("collisionCount", "int", ptr=True), 9: _f("terminatingReplicas", "int", ptr=True),
    },
    "DeploymentCondition": {1: _f("type"), 2: _f("status"), 4: _f("reason"), 5: _f("message"),
                            6: _f("lastUpdateTime", "time"), 7: _f("lastTransitionTime", "time")},
    # --- Job (batch/v1): what `kubectl create job` sends (no podFailurePolicy/successPolicy) ---
    "Job": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "JobSpec")},
    "JobSpec": {
        1: _f("parallelism", "int", ptr=True), 2: _f("completions", "int", ptr=True),
        3: _f("activeDeadlineSeconds", "int", ptr=True),
        4: _msg("selector", "LabelSelector", ptr=True), 5: _f("manualSelector", "bool", ptr=True),
        6: _msg("template", "PodTemplateSpec"), 7: _f("backoffLimit", "int", ptr=True),
        8: _f("ttlSecondsAfterFinished", "int", ptr=True), 9: _f("completionMode", ptr=True),
        10: _f("suspend", "bool", ptr=True), 12: _f("backoffLimitPerIndex", "int", ptr=True),
        13: _f("maxFailedIndexes", "int", ptr=True), 14: _f("podReplacementPolicy", ptr=True),
        15: _f("managedBy", ptr=True),
    },
    # --- CronJob (batch/v1): what `kubectl create cronjob` sends ---
    "CronJob": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "CronJobSpec")},
    "CronJobSpec": {
        1: _f("schedule"), 2: _f("startingDeadlineSeconds", "int", ptr=True),
        3: _f("concurrencyPolicy"), 4: _f("suspend", "bool", ptr=True),
        5: _msg("jobTemplate", "JobTemplateSpec"),
        6: _f("successfulJobsHistoryLimit", "int", ptr=True),
        7: _f("failedJobsHistoryLimit", "int", ptr=True), 8: _f("timeZone", ptr=True),
    },
    "JobTemplateSpec": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "JobSpec")},
    # --- pods ---
    "PodTemplateSpec": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "PodSpec")},
    "PodSpec": {
        2: _msg("containers", "Container", rep=True), 3: _f("restartPolicy"),
        4: _f("terminationGracePeriodSeconds", "int", ptr=True),
        5: _f("activeDeadlineSeconds", "int", ptr=True), 6: _f("dnsPolicy"),
        7: _f("nodeSelector", "map", _STR_MAP), 8: _f("serviceAccountName"),
        9: _f("serviceAccount"), 10: _f("nodeName"), 11: _f("hostNetwork", "bool"),
        12: _f("hostPID", "bool"), 13: _f("hostIPC", "bool"),
        15: _msg("imagePullSecrets", "LocalObjectReference", rep=True), 16: _f("hostname"),
        17: _f("subdomain"), 19: _f("schedulerName"),
        20: _msg("initContainers", "Container", rep=True),
        21: _f("automountServiceAccountToken", "bool", ptr=True), 24: _f("priorityClassName"),
        25: _f("priority", "int", ptr=True), 27: _f("shareProcessNamespace", "bool", ptr=True),
        29: _f("runtimeClassName", ptr=True), 30: _f("enableServiceLinks", "bool", ptr=True),
        31: _f("preemptionPolicy", ptr=True), 35: _f("setHostnameAsFQDN", "bool", ptr=True),
        37: _f("hostUsers", "bool", ptr=True),
    },
    "Container": {
        1: _f("name"), 2: _f("image"), 3: _f("command", rep=True), 4: _f("args", rep=True),
        5: _f("workingDir"), 6: _msg("ports", "ContainerPort", rep=True),
        7: _msg("env", "EnvVar", rep=True), 8: _msg("resources", "ResourceRequirements"),
        9: _msg("volumeMounts", "VolumeMount", rep=True), 13: _f("terminationMessagePath"),
        14: _f("imagePullPolicy"), 16: _f("stdin", "bool"), 17: _f("stdinOnce", "bool"),
        18: _f("tty", "bool"), 19: _msg("envFrom", "EnvFromSource", rep=True),
        20: _f("terminationMessagePolicy"), 24: _f("restartPolicy", ptr=True),
    },
    "ContainerPort": {1: _f("name"), 2: _f("hostPort", "int"), 3: _f("containerPort", "int"),
                      4: _f("protocol"), 5: _f("hostIP")},
    "EnvVar": {1: _f("name"), 2: _f("value"), 3: _msg("valueFrom", "EnvVarSource", ptr=True)},
    "EnvVarSource": {
        1: _msg("fieldRef", "ObjectFieldSelector", ptr=True),
        2: _msg("resourceFieldRef", "ResourceFieldSelector", ptr=True),
        3: _msg("configMapKeyRef", "KeySelector", ptr=True),
        4: _msg("secretKeyRef", "KeySelector", ptr=True),
    },
    "ObjectFieldSelector": {1: _f("apiVersion"), 2: _f("fieldPath")},
    "ResourceFieldSelector": {1: _f("containerName"), 2: _f("resource"), 3: _f("divisor", "qty")},
    # ConfigMapKeySelector and SecretKeySelector have the same layout
    "KeySelector": {1: _f("", "inline", "LocalObjectReference"), 2: _f("key"),
                    3: _f("optional", "bool", ptr=True)},
    "EnvFromSource": {1: _f("prefix"), 2: _msg("configMapRef", "EnvSource", ptr=True),
                      3: _msg("secretRef", "EnvSource", ptr=True)},
    # ConfigMapEnvSource and SecretEnvSource have the same layout
    "EnvSource": {1: _f("", "inline", "LocalObjectReference"), 2: _f("optional", "bool", ptr=True)},
    "ResourceRequirements": {1: _f("limits", "map", "qty"), 2: _f("requests", "map", "qty"),
                             3: _msg("claims", "ResourceClaim", rep=True)},
    "ResourceClaim": {1: _f("name"), 2: _f("request")},
    "VolumeMount": {1: _f("name"), 2: _f("readOnly", "bool"), 3: _f("mountPath"),
                    4: _f("subPath"), 5: _f("mountPropagation", ptr=True), 6: _f("subPathExpr"),
                    7: _f("recursiveReadOnly", ptr=True)},
    # --- ConfigMap, Secret, ServiceAccount ---
    "ConfigMap": {1: _msg("metadata", "ObjectMeta"), 2: _f("data", "map", _STR_MAP),
                  3: _f("binaryData", "map", "bytes"), 4: _f("immutable", "bool", ptr=True)},
    "Secret": {1: _msg("metadata", "ObjectMeta"), 2: _f("data", "map", "bytes"), 3: _f("type"),
               4: _f("stringData", "map", _STR_MAP), 5: _f("immutable", "bool", ptr=True)},
    "ServiceAccount": {1: _msg("metadata", "ObjectMeta"),
                       2: _msg("secrets", "ObjectReference", rep=True),
                       3: _msg("imagePullSecrets", "LocalObjectReference", rep=True),
                       4: _f("automountServiceAccountToken", "bool", ptr=True)},
    # --- Ingress (networking.k8s.io/v1) ---
    "Ingress": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "IngressSpec"),
                3: _msg("status", "IngressStatus")},
    "IngressSpec": {1: _msg("defaultBackend", "IngressBackend", ptr=True),
                    2: _msg("tls", "IngressTLS", rep=True),
                    3: _msg("rules", "IngressRule", rep=True),
                    4: _f("ingressClassName", ptr=True)},
    "IngressTLS": {1: _f("hosts", rep=True), 2: _f("secretName")},
    "IngressRule": {1: _f("host"), 2: _f("", "inline", "IngressRuleValue")},
    "IngressRuleValue": {1: _msg("http", "HTTPIngressRuleValue", ptr=True)},
    "HTTPIngressRuleValue": {1: _msg("paths", "HTTPIngressPath", rep=True)},
    "HTTPIngressPath": {1: _f("path"), 2: _msg("backend", "IngressBackend"),
                        3: _f("pathType", ptr=True)},
    "IngressBackend": {3: _msg("resource", "TypedLocalObjectReference", ptr=True),
                       4: _msg("service", "IngressServiceBackend", ptr=True)},
    "IngressServiceBackend": {1: _f("name"), 2: _msg("port", "ServiceBackendPort")},
    "ServiceBackendPort": {1: _f("name"), 2: _f("number", "int")},
    "TypedLocalObjectReference": {1: _f("apiGroup", ptr=True), 2: _f("kind"), 3: _f("name")},
    "IngressStatus": {1: _msg("loadBalancer", "IngressLoadBalancerStatus")},
    "IngressLoadBalancerStatus": {1: _msg("ingress", "IngressLoadBalancerIngress", rep=True)},
    "IngressLoadBalancerIngress": {1: _f("ip"), 2: _f("hostname"),
                                   4: _msg("ports", "IngressPortStatus", rep=True)},
    "IngressPortStatus": {1: _f("port", "int"), 2: _f("protocol"), 3: _f("error", ptr=True)},
    # --- TokenRequest (authentication.k8s.io/v1; `kubectl create token`) ---
    "TokenRequest": {1: _msg("metadata", "ObjectMeta"), 2: _msg("spec", "TokenRequestSpec"),
                     3: _msg("status", "TokenRequestStatus")},
    "TokenRequestSpec": {1: _f("audiences", rep=True),
                         3: _msg("boundObjectRef", "BoundObjectReference", ptr=True),
                         4: _f("expirationSeconds", "int", ptr=True)},
    "BoundObjectReference": {1: _f("kind"), 2: _f("apiVersion"), 3: _f("name"), 4: _f("uid")},
    "TokenRequestStatus": {1: _f("token"), 2: _f("expirationTimestamp", "time")},
    # --- authorization/v1 (kubectl auth can-i) ---
    "SelfSubjectAccessReview": {1: _msg("metadata", "ObjectMeta"),
                                2: _msg("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {
        1: _msg("resourceAttributes", "ResourceAttributes", ptr=True),
        2: _msg("nonResourceAttributes", "NonResourceAttributes", ptr=True)},
    "ResourceAttributes": {1: _f("namespace"), 2: _f("verb"), 3: _f("group"), 4: _f("version"),
                           5: _f("resource"), 6: _f("subresource"), 7: _f("name")},
    "NonResourceAttributes": {1: _f("path"), 2: _f("verb")},
    "SelfSubjectRulesReview": {1: _msg("metadata", "ObjectMeta"),
                               2: _msg("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: _f("namespace")},
}

# (apiVersion, kind) -> the table of the top-level message
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Service"): "Service",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
}


# --- decoding ------------------------------------------------------------------------------------

_ZERO = ("", 0, False)


def _time(data: bytes) -> str | None:
    """metav1.Time is Timestamp{seconds(1), nanos(2)}; JSON shows whole seconds (RFC 3339)."""
    seconds = nanos = 0
    for number, wire, value in iter_fields(data):
        if number == 1 and wire == VARINT:
            seconds = _signed(value)
        elif number == 2 and wire == VARINT:
            nanos = value
    if seconds == 0 and nanos == 0:
        return None  # metav1.Time's zero value, which Go's JSON shows as null
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(data: bytes) -> int | str:
    """intstr.IntOrString{type(1): 0 int / 1 string, intVal(2), strVal(3)}."""
    kind, int_val, str_val = 0, 0, ""
    for number, wire, value in iter_fields(data):
        if number == 1 and wire == VARINT:
            kind = _signed(value)
        elif number == 2 and wire == VARINT:
            int_val = _signed(value) & 0xFFFFFFFF
            int_val = int_val - (1 << 32) if int_val >= 1 << 31 else int_val
        elif number == 3 and wire == LENGTH:
            str_val = _text(value)
    return str_val if kind == 1 else int_val


def _quantity(data: bytes) -> str:
    """resource.Quantity is a message with its string form in field 1."""
    for number, wire, value in iter_fields(data):
        if number == 1 and wire == LENGTH:
            return _text(value)
    return ""


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")  # Go keeps invalid UTF-8; JSON would show U+FFFD


def _map_entry(data: bytes, value_type: str) -> tuple[str, object]:
    key, val = "", b""
    for number, wire, value in iter_fields(data):
        if wire != LENGTH:
            raise ProtobufError(f"wrong wireType {wire} in a map entry")
        if number == 1:
            key = _text(value)
        elif number == 2:
            val = value
    if value_type == "str":
        return key, _text(val)
    if value_type == "bytes":
        return key, base64.b64encode(val).decode("ascii")
    if value_type == "qty":
        return key, _quantity(val)
    return key, decode_message(val, value_type)


def _expect(field: Field, wire: int, wanted: int) -> None:
    if wire != wanted:
        raise ProtobufError(f"wrong wireType {wire} for field {field.name or field.type}")


def _scalars(field: Field, wire: int, value) -> list:
    """The value(s) of a scalar field; repeated varints may come packed in one LENGTH field."""
    if field.kind in ("int", "bool"):
        if wire == LENGTH and field.repeated:
            values, pos = [], 0
            while pos < len(value):
                v, pos = read_varint(value, pos)
                values.append(v)
        else:
            _expect(field, wire, VARINT)
            values = [value]
        if field.kind == "bool":
            return [v != 0 for v in values]
        return [_signed(v) for v in values]
    _expect(field, wire, LENGTH)
    if field.kind == "str":
        return [_text(value)]
    if field.kind == "bytes":
        return [base64.b64encode(value).decode("ascii")]
    if field.kind == "ios":
        return [_int_or_string(value)]
    if field.kind == "time":
        return [_time(value)]
    if field.kind == "qty":
        return [_quantity(value)]
    if field.kind == "json":  # FieldsV1{raw(1)} holds a JSON document
        raw = next((v for n, w, v in iter_fields(value) if n == 1 and w == LENGTH), b"")
        try:
            return [json.loads(raw) if raw else None]
        except ValueError:
            raise ProtobufError("invalid JSON in fieldsV1") from None
    raise ProtobufError(f"unknown field kind {field.kind}")


def _is_zero(field: Field, value) -> bool:
    if field.ptr or field.repeated:
        return False
    if field.kind == "time":
        return value is None
    return value in _ZERO and type(value) is not dict


def decode_message(data: bytes, type_name: str) -> dict:
    """One message of a table in TYPES as its JSON shape."""
    table = TYPES[type_name]
    out: dict = {}
    for number, wire, value in iter_fields(data):
        field = table.get(number)
        if field is None:
            continue  # a field we do not know (newer API, or one we do not serve)
        if field.kind == "inline":
            _expect(field, wire, LENGTH)
            out.update(decode_message(value, field.type))
        elif field.kind == "msg":
            _expect(field, wire, LENGTH)
            child = decode_message(value, field.type)
            if field.repeated:
                out.setdefault(field.name, []).append(child)
            else:
                out[field.name] = child
        elif field.kind == "map":
            _expect(field, wire, LENGTH)
            key, val = _map_entry(value, field.type)
            out.setdefault(field.name, {})[key] = val
        else:
            for item in _scalars(field, wire, value):
                if field.repeated:
                    out.setdefault(field.name, []).append(item)
                elif _is_zero(field, item):
                    out.pop(field.name, None)  # the last occurrence wins, as in Go
                else:
                    out[field.name] = item
    return out


@dataclass
class Unknown:
    """runtime.Unknown: the envelope every Kubernetes protobuf body comes in."""
    api_version: str = ""
    kind: str = ""
    raw: bytes = b""
    content_encoding: str = ""
    content_type: str = ""


def decode_unknown(data: bytes) -> Unknown:
    if not data.startswith(MAGIC):
        raise ProtobufError("provided object is not a Kubernetes protobuf object "
                            "(missing the k8s\\x00 prefix)")
    env = Unknown()
    for number, wire, value in iter_fields(data[len(MAGIC):]):
        if wire != LENGTH:
            continue
        if number == 1:
            for n, w, v in iter_fields(value):
                if w == LENGTH and n == 1:
                    env.api_version = _text(v)
                elif w == LENGTH and n == 2:
                    env.kind = _text(v)
        elif number == 2:
            env.raw = value
        elif number == 3:
            env.content_encoding = _text(value)
        elif number == 4:
            env.content_type = _text(value)
    return env


class UnsupportedKind(ProtobufError):
    """A well-formed envelope around a kind we have no protobuf tables for."""


def decode_object(data: bytes) -> dict:
    """The JSON-shaped object (with apiVersion and kind) in a Kubernetes protobuf body."""
    env = decode_unknown(data)
    if env.content_encoding:
        raise ProtobufError(f"unsupported content encoding {env.content_encoding!r}")
    type_name = KINDS.get((env.api_version, env.kind))
    if type_name is None:
        raise UnsupportedKind(f"no protobuf support for {env.kind} in {env.api_version}")
    obj = {"apiVersion": env.api_version, "kind": env.kind}
    obj.update(decode_message(env.raw, type_name))
    return obj
