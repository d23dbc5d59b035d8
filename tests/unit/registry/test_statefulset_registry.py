"""StatefulSet and ControllerRevision strategies: defaults, validation in Kubernetes' words,
tables."""
import copy
import datetime as dt

from nanokube.registry.controllerrevision import ControllerRevisionStrategy
from nanokube.registry.statefulset import StatefulSetStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def sts(**spec):
    spec.setdefault("serviceName", "nginx")
    spec.setdefault("selector", {"matchLabels": {"app": "nginx"}})
    spec.setdefault("template", {
        "metadata": {"labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                {"name": "side", "image": "busybox"}]}})
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default",
                         "creationTimestamp": THREE_DAYS_AGO}, "spec": spec}


def errors(obj, old=None):
    s = StatefulSetStrategy()
    s.default(obj)
    if old is None:
        return [str(e) for e in s.validate(obj)]
    s.default(old)
    return [str(e) for e in s.validate_update(obj, old)]


def test_discovery_facts():
    s = StatefulSetStrategy()
    assert (s.group, s.plural, s.singular, s.short_names, s.categories, s.has_status) == (
        "apps", "statefulsets", "statefulset", ("sts",), ("all",), True)


def test_defaults():
    obj = sts(volumeClaimTemplates=[{"metadata": {"name": "data"},
                                     "spec": {"accessModes": ["ReadWriteOnce"]}}])
    StatefulSetStrategy().default(obj)
    spec = obj["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                            "whenScaled": "Retain"}
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    claim = spec["volumeClaimTemplates"][0]
    assert (claim["apiVersion"], claim["kind"], claim["spec"]["volumeMode"],
            claim["status"]) == ("v1", "PersistentVolumeClaim", "Filesystem",
                                 {"phase": "Pending"})
    assert errors(obj) == []
    # an explicit RollingUpdate without rollingUpdate stays so (no partition), as in Kubernetes
    obj = sts(updateStrategy={"type": "RollingUpdate"})
    StatefulSetStrategy().default(obj)
    assert obj["spec"]["updateStrategy"] == {"type": "RollingUpdate"}


def test_selector_must_match_template_labels():
    obj = sts()
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert errors(obj) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
        "`selector` does not match template `labels`"]
    assert errors(sts(selector={})) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "statefulset"]
    # a nil selector selects nothing, so the template does not match it either (as in Go)
    assert errors(sts(selector=None)) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"nginx"}: '
        "`selector` does not match template `labels`"]


def test_spec_validation_messages():
    obj = sts(podManagementPolicy="Random", replicas=-1, minReadySeconds=-2,
              ordinals={"start": -1},
              persistentVolumeClaimRetentionPolicy={"whenDeleted": "Keep"})
    obj["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    assert errors(obj) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or "
        "'Parallel'",
        'spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": '
        'supported values: "Delete", "Retain"',
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
        "spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0",
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: '
        '"Always"',
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in "
        "StatefulSet is not Supported"]


def test_update_strategy_messages():
    assert errors(sts(updateStrategy={"type": "OnDelete", "rollingUpdate": {"partition": 1}})) \
        == ["spec.updateStrategy.rollingUpdate: Invalid value: "
            "(*apps.RollingUpdateStatefulSetStrategy)(0xc000000000): only allowed for "
            "updateStrategy 'RollingUpdate'"]
    assert errors(sts(updateStrategy={"type": "Recreate"})) == [
        'spec.updateStrategy: Invalid value: apps.StatefulSetUpdateStrategy{Type:"Recreate", '
        "RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: must be 'RollingUpdate' "
        "or 'OnDelete'"]
    assert errors(sts(updateStrategy={"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": -1}})) == [
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than "
        "or equal to 0"]


def test_name_is_a_dns_label():
    obj = sts()
    obj["metadata"]["name"] = "web.v1"
    assert errors(obj)[0].startswith('metadata.name: Invalid value: "web.v1": a lowercase '
                                     "RFC 1123 label must consist of")


def test_update_only_mutable_fields():
    old = sts()
    new = copy.deepcopy(old)
    new["spec"].update(replicas=5, minReadySeconds=3, ordinals={"start": 1},
                       updateStrategy={"type": "OnDelete"})
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    assert errors(new, old) == []
    new = copy.deepcopy(old)
    new["spec"]["serviceName"] = "other"
    assert errors(new, old) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"]


def test_table():
    s = StatefulSetStrategy()
    obj = sts(replicas=3)
    obj["status"] = {"replicas": 3, "readyReplicas": 2}
    assert [(c.name, c.priority) for c in s.columns] == [
        ("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1)]
    assert s.table_row(obj) == ["web", "2/3", "3d", "web,side", "nginx:1.27,busybox"]


def test_controller_revision():
    s = ControllerRevisionStrategy()
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
           "metadata": {"name": "web-7b9c", "namespace": "default",
                        "creationTimestamp": THREE_DAYS_AGO,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                             "name": "web", "uid": "u", "controller": True}]},
           "data": {"spec": {"template": {}}}, "revision": 2}
    assert s.validate(rev) == []
    assert s.table_row(rev) == ["web-7b9c", "statefulset.apps/web", 2, "3d"]
    assert [str(e) for e in s.validate({**rev, "data": None, "revision": -1})] == [
        "data: Required value: data is mandatory",
        "revision: Invalid value: -1: must be greater than or equal to 0"]
    changed = {**rev, "data": {"spec": {}}, "revision": 3}
    assert [str(e) for e in s.validate_update(changed, rev)] == [
        "data: Invalid value: runtime.RawExtension{Raw:[]byte{0x7b, 0x22, 0x73, 0x70, 0x65, "
        "0x63, 0x22, 0x3a, 0x7b, 0x7d, 0x7d}, Object:runtime.Object(nil)}: field is immutable"]
