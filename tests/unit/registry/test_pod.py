import copy
import datetime as dt

import pytest

from nanokube.registry.pod import PodStrategy, image_tag, pod_qos_class


def ago(**kw):
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(**spec):
    spec.setdefault("containers", [{"name": "web", "image": "nginx:1.27",
                                    "ports": [{"containerPort": 80}]}])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(days=3)},
            "spec": spec}


@pytest.fixture
def s():
    return PodStrategy()


def msgs(errs):
    return [str(e) for e in errs]


def test_discovery_facts(s):
    assert (s.group, s.version, s.kind, s.plural, s.singular) == ("", "v1", "Pod", "pods", "pod")
    assert s.short_names == ("po",) and s.categories == ("all",)
    assert s.namespaced and s.has_status


def test_defaults(s):
    obj = pod()
    s.default(obj)
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["enableServiceLinks"] is True
    assert spec["securityContext"] == {}
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    assert spec["priority"] == 0 and spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert {t["key"] for t in spec["tolerations"]} == {"node.kubernetes.io/not-ready",
                                                       "node.kubernetes.io/unreachable"}
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    again = copy.deepcopy(obj)
    s.default(again)
    assert again == obj  # idempotent


def test_image_pull_policy_follows_tag():
    assert image_tag("nginx") == "latest"
    assert image_tag("nginx:latest") == "latest"
    assert image_tag("localhost:5000/nginx") == "latest"
    assert image_tag("localhost:5000/nginx:1.2") == "1.2"
    assert image_tag("nginx@sha256:abc") == ""


def test_always_pull_for_latest(s):
    obj = pod(containers=[{"name": "a", "image": "busybox"}])
    s.default(obj)
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_probe_and_volume_defaults(s):
    obj = pod(containers=[{"name": "a", "image": "x:1",
                           "readinessProbe": {"httpGet": {"port": 80}},
                           "env": [{"name": "N", "valueFrom": {"fieldRef": {
                               "fieldPath": "metadata.name"}}}]}],
              volumes=[{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}])
    s.default(obj)
    probe = obj["spec"]["containers"][0]["readinessProbe"]
    assert probe == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                     "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert obj["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert obj["spec"]["volumes"][0] == {"name": "scratch", "emptyDir": {}}
    assert obj["spec"]["volumes"][1]["configMap"]["defaultMode"] == 420


def test_requests_default_to_limits_and_qos(s):
    obj = pod(containers=[{"name": "a", "image": "x:1",
                           "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])
    s.default(obj)
    assert obj["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    s.prepare_create(obj)
    assert obj["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    assert pod_qos_class(pod()["spec"]) == "BestEffort"
    assert pod_qos_class({"containers": [{"resources": {"requests": {"cpu": "1"}}}]}) == \
        "Burstable"


def test_valid_pod_has_no_errors(s):
    obj = pod()
    s.default(obj)
    assert s.validate(obj) == []


def test_containers_required(s):
    obj = pod(containers=[])
    s.default(obj)
    assert msgs(s.validate(obj)) == ["spec.containers: Required value"]


def test_container_name_and_image(s):
    obj = pod(containers=[{"image": ""}, {"name": "Web", "image": "x"},
                          {"name": "b", "image": "x"}, {"name": "b", "image": "x"}])
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        "spec.containers[0].name: Required value",
        "spec.containers[0].image: Required value",
        "spec.containers[1].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist "
        "of lower case alphanumeric characters or '-', and must start and end with an "
        "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        'spec.containers[3].name: Duplicate value: "b"']


def test_container_ports_and_policies(s):
    obj = pod(containers=[{"name": "a", "image": "x", "imagePullPolicy": "Sometimes",
                           "ports": [{"containerPort": 0}, {"containerPort": 70000,
                                                            "protocol": "HTTP"}]}],
              restartPolicy="Sometimes", dnsPolicy="Google")
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        "spec.containers[0].ports[0].containerPort: Required value",
        "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and "
        "65535, inclusive",
        'spec.containers[0].ports[1].protocol: Unsupported value: "HTTP": supported values: '
        '"SCTP", "TCP", "UDP"',
        'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: '
        '"Always", "IfNotPresent", "Never"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"Never", "OnFailure"',
        'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirst", '
        '"ClusterFirstWithHostNet", "Default", "None"']


def test_volume_mount_must_name_a_volume(s):
    obj = pod(containers=[{"name": "a", "image": "x",
                           "volumeMounts": [{"name": "data", "mountPath": "/d"}]}])
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        'spec.containers[0].volumeMounts[0].name: Not found: "data"']


def test_env_name(s):
    obj = pod(containers=[{"name": "a", "image": "x", "env": [{"name": "1X", "value": "v"}]}])
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        "spec.containers[0].env[0].name: Invalid value: \"1X\": a valid environment variable "
        "name must consist of alphabetic characters, digits, '_', '-', or '.', and must not "
        "start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex "
        "used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"]


def test_update_may_change_image_only(s):
    old = pod()
    s.default(old)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.28"
    assert s.validate_update(new, old) == []
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 81
    errs = msgs(s.validate_update(new, old))
    assert len(errs) == 1
    assert errs[0].startswith("spec: Forbidden: pod updates may not change fields other than "
                              "`spec.containers[*].image`,")


def test_table_running_pod(s):
    obj = pod(nodeName="node-1")
    obj["status"] = {
        "phase": "Running", "podIP": "10.244.1.5",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "web", "ready": True, "restartCount": 2,
                               "state": {"running": {"startedAt": ago(minutes=1)}},
                               "lastState": {"terminated": {"exitCode": 1,
                                                            "finishedAt": ago(days=3)}}}]}
    assert s.table_row(obj) == ["web", "1/1", "Running", "2 (3d ago)", "3d", "10.244.1.5",
                                "node-1", "<none>", "<none>"]


def test_table_pending_and_waiting(s):
    obj = pod(readinessGates=[{"conditionType": "example.com/gate"}])
    obj["status"] = {"phase": "Pending"}
    assert s.table_row(obj) == ["web", "0/1", "Pending", "0", "3d", "<none>", "<none>", "<none>",
                                "0/1"]
    obj["status"]["containerStatuses"] = [
        {"name": "web", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "ContainerCreating"}}}]
    assert s.table_row(obj)[2] == "ContainerCreating"
    obj["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert s.table_row(obj)[2] == "Terminating"


def test_table_completed_and_init(s):
    obj = pod(initContainers=[{"name": "init", "image": "x"}])
    obj["status"] = {"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "restartCount": 0, "state": {"running": {}}}]}
    assert s.table_row(obj)[2] == "Init:0/1"
    obj["status"] = {"phase": "Succeeded", "containerStatuses": [
        {"name": "web", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    assert s.table_row(obj)[1:3] == ["0/1", "Completed"]


def test_columns(s):
    assert [(c.name, c.priority) for c in s.columns] == [
        ("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1),
        ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]


def test_field_labels(s):
    obj = pod(nodeName="n1")
    s.default(obj)
    obj["status"] = {"phase": "Running", "podIPs": [{"ip": "10.244.0.7"}]}
    labels = s.field_labels(obj)
    assert labels["spec.nodeName"] == "n1"
    assert labels["spec.restartPolicy"] == "Always"
    assert labels["spec.schedulerName"] == "default-scheduler"
    assert labels["spec.serviceAccountName"] == "default"
    assert labels["status.phase"] == "Running"
    assert labels["status.podIP"] == "10.244.0.7"
    assert labels["status.nominatedNodeName"] == ""


def test_status_update_keeps_pod_ips_consistent(s):
    old = pod()
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Running", "podIP": "10.244.0.9"}
    s.prepare_status_update(new, old)
    assert new["status"]["podIPs"] == [{"ip": "10.244.0.9"}]
