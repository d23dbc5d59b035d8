import datetime as dt

from nanokube.registry.replicaset import ReplicaSetStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def rs(**spec):
    spec.setdefault("selector", {"matchLabels": {"app": "web", "pod-template-hash": "abc"}})
    spec.setdefault("template", {
        "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                {"name": "side", "image": "busybox"}]}})
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default",
                         "creationTimestamp": THREE_DAYS_AGO}, "spec": spec}


def test_discovery_facts():
    s = ReplicaSetStrategy()
    assert (s.group, s.plural, s.singular, s.short_names, s.categories, s.has_status) == (
        "apps", "replicasets", "replicaset", ("rs",), ("all",), True)


def test_defaults_and_valid():
    s = ReplicaSetStrategy()
    obj = rs()
    s.default(obj)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert obj["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"] == "Always"
    assert s.validate(obj) == []


def test_selector_mismatch():
    s = ReplicaSetStrategy()
    obj = rs()
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "web"}
    s.default(obj)
    assert [str(e) for e in s.validate(obj)] == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]


def test_table_and_fields():
    s = ReplicaSetStrategy()
    obj = rs(replicas=2)
    obj["status"] = {"replicas": 2, "readyReplicas": 1}
    assert [c.name for c in s.columns] == ["Name", "Desired", "Current", "Ready", "Age",
                                           "Containers", "Images", "Selector"]
    assert s.table_row(obj) == ["web-abc", 2, 2, 1, "3d", "web,side", "nginx:1.27,busybox",
                                "app=web,pod-template-hash=abc"]
    assert s.field_labels(obj) == {"status.replicas": "2"}
