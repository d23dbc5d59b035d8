"""Pods (core/v1): defaulting, validation, table and selectable fields.

The pod-spec helpers here (defaults and validation) are shared with the kinds that embed a
pod template (Deployment, ReplicaSet).
"""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy

PROTOCOLS = ["SCTP", "TCP", "UDP"]
RESTART_POLICIES = ["Always", "Never", "OnFailure"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["FallbackToLogsOnError", "File"]

# Keys of a volume that name its source; a volume with none of them becomes an emptyDir.
_VOLUME_SOURCES = {
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image",
}

_UPDATABLE_POD_FIELDS = ",".join([
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)",
])


# ---- defaulting -------------------------------------------------------------------------------

def image_tag(image: str) -> str:
    """The tag parsers.ParseImageName finds: "latest" when neither tag nor digest is given."""
    if "@" in image:
        return ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "latest"


def _default_probe(probe: dict | None) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_field_ref(ref: Any) -> None:
    if isinstance(ref, dict):
        ref.setdefault("apiVersion", "v1")


def default_container(c: dict, host_network: bool = False) -> None:
    """SetDefaults_Container and the defaults of what a container holds."""
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = "Always" if image_tag(c.get("image") or "") == "latest" \
            else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if host_network and not port.get("hostPort"):
                port["hostPort"] = port.get("containerPort")
    for env in c.get("env") or []:
        if isinstance(env, dict) and isinstance(env.get("valueFrom"), dict):
            _default_field_ref(env["valueFrom"].get("fieldRef"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(key))


def _default_volume(vol: dict) -> None:
    if not any(k in vol for k in _VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for key in ("secret", "configMap", "projected", "downwardAPI"):
        if isinstance(vol.get(key), dict):
            vol[key].setdefault("defaultMode", 420)
    if isinstance(vol.get("hostPath"), dict):
        vol["hostPath"].setdefault("type", "")
    if isinstance(vol.get("downwardAPI"), dict):
        for item in vol["downwardAPI"].get("items") or []:
            if isinstance(item, dict):
                _default_field_ref(item.get("fieldRef"))


def default_pod_spec(spec: dict, pod: bool = False) -> None:
    """SetDefaults_PodSpec (templates and pods); `pod` adds what only Pods get."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    host_network = bool(spec.get("hostNetwork")) and pod
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                default_container(c, host_network)
    for vol in spec.get("volumes") or []:
        if isinstance(vol, dict):
            _default_volume(vol)


def _default_requests_to_limits(spec: dict) -> None:
    """SetDefaults_Pod: a container with limits but no requests requests its limits."""
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            res = c.get("resources") if isinstance(c, dict) else None
            if isinstance(res, dict) and res.get("limits"):
                requests = res.setdefault("requests", {})
                for name, value in res["limits"].items():
                    requests.setdefault(name, value)


_DEFAULT_TOLERATIONS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _add_default_tolerations(spec: dict) -> None:
    """The DefaultTolerationSeconds admission plugin: tolerate 5 minutes of node trouble."""
    tolerations = spec.setdefault("tolerations", [])
    for key in _DEFAULT_TOLERATIONS:
        tolerated = any(
            isinstance(t, dict) and t.get("effect", "NoExecute") in ("NoExecute", "")
            and (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
            for t in tolerations)
        if not tolerated:
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})


def sync_pod_ips(status: dict) -> None:
    """v1 carries podIP and podIPs (hostIP and hostIPs); keep each pair consistent."""
    for one, many in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        if status.get(one) and not status.get(many):
            status[many] = [{"ip": status[one]}]
        elif status.get(many) and not status.get(one):
            first = status[many][0]
            if isinstance(first, dict) and first.get("ip"):
                status[one] = first["ip"]


def pod_qos_class(spec: dict) -> str:
    """GetPodQOS, for cpu and memory."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        for name in ("cpu", "memory"):
            if str(requests.get(name, "0")) not in ("0", "") or \
                    str(limits.get(name, "0")) not in ("0", ""):
                any_set = True
            if name not in limits or str(requests.get(name, limits.get(name))) != \
                    str(limits[name]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# ---- validation -------------------------------------------------------------------------------

def dns_label_errors(value: str, field: str) -> list[FieldError]:
    return [E.invalid(field, value, m) for m in V.is_dns1123_label(value)]


def dns_subdomain_errors(value: str, field: str) -> list[FieldError]:
    return [E.invalid(field, value, m) for m in V.is_dns1123_subdomain(value)]


def _env_var_name_errors(name: str) -> list[str]:
    import re
    errs = []
    if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", name):
        errs.append(
            "a valid environment variable name must consist of alphabetic characters, digits, "
            "'_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
            "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
            "'[-._a-zA-Z][-._a-zA-Z0-9]*')")
    errs += chdir_prefix_errors(name)
    return errs


def chdir_prefix_errors(value: str) -> list[str]:
    """hasChDirPrefix from apimachinery."""
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def validate_container_ports(ports: list, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports or []):
        path = f"{field}[{i}]"
        name = port.get("name") or ""
        if name:
            msgs = V.is_valid_port_name(name)
            if msgs:
                errs += [E.invalid(f"{path}.name", name, m) for m in msgs]
            elif name in names:
                errs.append(E.duplicate(f"{path}.name", name))
            else:
                names.add(name)
        cport = port.get("containerPort") or 0
        if cport == 0:
            errs.append(E.required(f"{path}.containerPort"))
        else:
            errs += [E.invalid(f"{path}.containerPort", cport, m)
                     for m in V.is_valid_port_num(cport)]
        hport = port.get("hostPort") or 0
        if hport:
            errs += [E.invalid(f"{path}.hostPort", hport, m) for m in V.is_valid_port_num(hport)]
        proto = port.get("protocol") or ""
        if not proto:
            errs.append(E.required(f"{path}.protocol"))
        elif proto not in PROTOCOLS:
            errs.append(E.not_supported(f"{path}.protocol", proto, PROTOCOLS))
    return errs


def _validate_env(env: list, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, ev in enumerate(env or []):
        name = ev.get("name") or ""
        if not name:
            errs.append(E.required(f"{field}[{i}].name"))
        errs += [E.invalid(f"{field}[{i}].name", name, m) for m in _env_var_name_errors(name)]
    return errs


def _validate_volume_mounts(mounts: list, volumes: set[str], field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, m in enumerate(mounts or []):
        path = f"{field}[{i}]"
        name = m.get("name") or ""
        if not name:
            errs.append(E.required(f"{path}.name"))
        elif name not in volumes:
            errs.append(E.not_found(f"{path}.name", name))
        if not m.get("mountPath"):
            errs.append(E.required(f"{path}.mountPath"))
    return errs


def _validate_container(c: dict, volumes: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = c.get("name") or ""
    if not name:
        errs.append(E.required(f"{path}.name"))
    else:
        errs += dns_label_errors(name, f"{path}.name")
    if not c.get("image"):
        errs.append(E.required(f"{path}.image"))
    policy = c.get("terminationMessagePolicy") or ""
    if not policy:
        errs.append(E.required(f"{path}.terminationMessagePolicy",
                               "must be 'File' or 'FallbackToLogsOnError'"))
    elif policy not in TERMINATION_MESSAGE_POLICIES:
        errs.append(E.not_supported(f"{path}.terminationMessagePolicy", policy,
                                    TERMINATION_MESSAGE_POLICIES))
    errs += validate_container_ports(c.get("ports"), f"{path}.ports")
    errs += _validate_env(c.get("env"), f"{path}.env")
    errs += _validate_volume_mounts(c.get("volumeMounts"), volumes, f"{path}.volumeMounts")
    pull = c.get("imagePullPolicy") or ""
    if not pull:
        errs.append(E.required(f"{path}.imagePullPolicy"))
    elif pull not in PULL_POLICIES:
        errs.append(E.not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    return errs


def _validate_containers(containers: list, volumes: set[str], field: str,
                         seen: set[str], required: bool) -> list[FieldError]:
    if not containers:
        return [E.required(field)] if required else []
    errs: list[FieldError] = []
    for i, c in enumerate(containers):
        path = f"{field}[{i}]"
        if not isinstance(c, dict):
            errs.append(E.invalid(path, c, "must be an object"))
            continue
        errs += _validate_container(c, volumes, path)
        name = c.get("name") or ""
        if name in seen:
            errs.append(E.duplicate(f"{path}.name", name))
        else:
            seen.add(name)
    return errs


def _validate_volumes(volumes: list, field: str) -> tuple[set[str], list[FieldError]]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, vol in enumerate(volumes or []):
        path = f"{field}[{i}]"
        name = vol.get("name") or ""
        if not name:
            errs.append(E.required(f"{path}.name"))
        else:
            errs += dns_label_errors(name, f"{path}.name")
        if name in names:
            errs.append(E.duplicate(f"{path}.name", name))
        elif name:
            names.add(name)
    return names, errs


def validate_pod_spec(spec: dict, field: str) -> list[FieldError]:
    """ValidatePodSpec: the main rules, in Kubernetes' order."""
    if not isinstance(spec, dict):
        return [E.required(field)]
    errs: list[FieldError] = []
    if spec.get("terminationGracePeriodSeconds") is None:
        errs.append(E.required(f"{field}.terminationGracePeriodSeconds"))
    volumes, verrs = _validate_volumes(spec.get("volumes"), f"{field}.volumes")
    errs += verrs
    seen: set[str] = set()
    errs += _validate_containers(spec.get("containers"), volumes, f"{field}.containers", seen,
                                 required=True)
    errs += _validate_containers(spec.get("initContainers"), volumes,
                                 f"{field}.initContainers", seen, required=False)
    restart = spec.get("restartPolicy") or ""
    if not restart:
        errs.append(E.required(f"{field}.restartPolicy"))
    elif restart not in RESTART_POLICIES:
        errs.append(E.not_supported(f"{field}.restartPolicy", restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy") or ""
    if not dns:
        errs.append(E.required(f"{field}.dnsPolicy"))
    elif dns not in DNS_POLICIES:
        errs.append(E.not_supported(f"{field}.dnsPolicy", dns, DNS_POLICIES))
    errs += V.validate_labels(spec.get("nodeSelector"), f"{field}.nodeSelector")
    if spec.get("serviceAccountName"):
        errs += dns_subdomain_errors(spec["serviceAccountName"], f"{field}.serviceAccountName")
    if spec.get("nodeName"):
        errs += dns_subdomain_errors(spec["nodeName"], f"{field}.nodeName")
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and not 1 <= ads <= 2**31 - 1:
        errs.append(E.invalid(f"{field}.activeDeadlineSeconds", ads,
                              "must be between 1 and 2147483647, inclusive"))
    if spec.get("hostname"):
        errs += dns_label_errors(spec["hostname"], f"{field}.hostname")
    if spec.get("subdomain"):
        errs += dns_label_errors(spec["subdomain"], f"{field}.subdomain")
    return errs


def validate_pod_template_spec(template: dict, field: str) -> list[FieldError]:
    """ValidatePodTemplateSpec (note Kubernetes reports labels at `<field>.labels`)."""
    if not isinstance(template, dict):
        return [E.required(field)]
    meta = template.get("metadata") or {}
    errs = V.validate_labels(meta.get("labels"), f"{field}.labels")
    errs += V.validate_annotations(meta.get("annotations"), f"{field}.annotations")
    errs += validate_pod_spec(template.get("spec"), f"{field}.spec")
    if (template.get("spec") or {}).get("ephemeralContainers"):
        errs.append(E.forbidden(f"{field}.spec.ephemeralContainers",
                                "ephemeral containers not allowed in pod template"))
    return errs


def _masked_spec(spec: dict) -> dict:
    """The pod spec without the fields an update may change."""
    out = dict(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        out.pop(key, None)
    for key in ("containers", "initContainers"):
        if isinstance(out.get(key), list):
            out[key] = [{k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                        for c in out[key]]
    return out


# ---- table ------------------------------------------------------------------------------------

def _is_restartable_init(c: dict | None) -> bool:
    return bool(c) and c.get("restartPolicy") == "Always"


def _later(a: str, b: str | None) -> str:
    """The later of two RFC 3339 timestamps ("" is the zero time)."""
    from nanokube.apitime import parse_datetime
    tb = parse_datetime(b)
    if tb is None:
        return a
    ta = parse_datetime(a)
    return b if ta is None or tb > ta else a


def _terminated_at(status: dict) -> str | None:
    last = (status.get("lastState") or {}).get("terminated")
    return last.get("finishedAt") if isinstance(last, dict) else None


def pod_status_cells(pod: dict) -> tuple[str, str, str]:
    """Ready, Status and Restarts as printPod computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    total = len(spec.get("containers") or [])
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart = ""
    last_sidecar_restart = ""
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total += sum(1 for c in init_specs.values() if _is_restartable_init(c))

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += cs.get("restartCount") or 0
        last_restart = _later(last_restart, _terminated_at(cs))
        sidecar = _is_restartable_init(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += cs.get("restartCount") or 0
            last_sidecar_restart = _later(last_sidecar_restart, _terminated_at(cs))
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term and (term.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term:
            if not term.get("reason"):
                if term.get("signal"):
                    reason = f"Init:Signal:{term['signal']}"
                else:
                    reason = f"Init:ExitCode:{term.get('exitCode') or 0}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount") or 0
            last_restart = _later(last_restart, _terminated_at(cs))
            state = cs.get("state") or {}
            term, waiting = state.get("terminated"), state.get("waiting")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                if term.get("signal"):
                    reason = f"Signal:{term['signal']}"
                else:
                    reason = f"ExitCode:{term.get('exitCode') or 0}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"

    if pod.get("metadata", {}).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart:
        restarts_cell = f"{restarts} ({since(last_restart)} ago)"
    return f"{ready}/{total}", reason, restarts_cell


def _pod_ip(status: dict) -> str:
    ips = status.get("podIPs") or []
    if ips and isinstance(ips[0], dict) and ips[0].get("ip"):
        return ips[0]["ip"]
    return status.get("podIP") or ""


# ---- strategy ---------------------------------------------------------------------------------

class PodStrategy(Strategy):
    kind = "Pod"
    plural = "pods"
    singular = "pod"
    short_names = ("po",)
    categories = ("all",)
    has_status = True
    return_deleted_object = True   # as Kubernetes' pod storage: DELETE answers with the Pod
    columns = [
        NAME_COLUMN,
        Column("Ready", description="The aggregate readiness state of this pod for accepting "
               "traffic."),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column("Restarts", description="The number of times the containers in this pod have "
               "been restarted and when the last container in this pod has restarted."),
        AGE_COLUMN,
        Column("IP", priority=1, description="podIP address allocated to the pod. Routable at "
               "least within the cluster. Empty if not yet allocated."),
        Column("Node", priority=1, description="NodeName indicates in which node this pod is "
               "scheduled."),
        Column("Nominated Node", priority=1, description="nominatedNodeName is set only when "
               "this pod preempts other pods on the node, but it cannot be scheduled right "
               "away as preemption victims receive their graceful termination periods."),
        Column("Readiness Gates", priority=1, description="If specified, all readiness gates "
               "will be evaluated for pod readiness."),
    ]

    def default(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec, pod=True)
        if spec.get("enableServiceLinks") is None:
            spec["enableServiceLinks"] = True
        _default_requests_to_limits(spec)
        # What the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins add.
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec["serviceAccount"] = spec["serviceAccountName"]
        if spec.get("priority") is None and not spec.get("priorityClassName"):
            spec["priority"] = 0
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        _add_default_tolerations(spec)
        if isinstance(obj.get("status"), dict):
            sync_pod_ips(obj["status"])

    def prepare_create(self, obj: dict) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(obj.get("spec") or {})}

    def deletion_grace_seconds(self, obj: dict, options: dict) -> int:
        """CheckGracefulDelete: unscheduled and finished pods go at once; others get the
        requested grace period, else terminationGracePeriodSeconds (the node agent ends them)."""
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        try:
            return max(0, int(grace))
        except (TypeError, ValueError):
            raise E.bad_request(f"invalid gracePeriodSeconds: {grace}") from None

    def prepare_status_update(self, new: dict, old: dict) -> None:
        super().prepare_status_update(new, old)
        if isinstance(new.get("status"), dict):
            sync_pod_ips(new["status"])

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        errs += validate_pod_spec(obj.get("spec"), "spec")
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += self.validate(new)
        if _masked_spec(new.get("spec") or {}) != _masked_spec(old.get("spec") or {}):
            # Kubernetes appends a cmp.Diff of the two specs to this message.
            errs.append(E.forbidden("spec", "pod updates may not change fields other than "
                                    + _UPDATABLE_POD_FIELDS + "\n"))
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        ready, reason, restarts = pod_status_cells(obj)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        gates = spec.get("readinessGates") or []
        gates_cell = "<none>"
        if gates:
            true_count = 0
            for gate in gates:
                for cond in status.get("conditions") or []:
                    if cond.get("type") == gate.get("conditionType"):
                        true_count += cond.get("status") == "True"
                        break
            gates_cell = f"{true_count}/{len(gates)}"
        return [obj["metadata"]["name"], ready, reason, restarts,
                since(obj["metadata"].get("creationTimestamp")),
                _pod_ip(status) or "<none>", spec.get("nodeName") or "<none>",
                status.get("nominatedNodeName") or "<none>", gates_cell]

    def field_labels(self, obj: dict) -> dict[str, str]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        return {
            "spec.nodeName": spec.get("nodeName") or "",
            "spec.restartPolicy": spec.get("restartPolicy") or "",
            "spec.schedulerName": spec.get("schedulerName") or "",
            "spec.serviceAccountName": spec.get("serviceAccountName") or "",
            "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
            "status.phase": status.get("phase") or "",
            "status.podIP": _pod_ip(status),
            "status.nominatedNodeName": status.get("nominatedNodeName") or "",
        }
