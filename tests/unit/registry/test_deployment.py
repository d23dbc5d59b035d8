import copy
import datetime as dt

import pytest

from nanokube.registry.deployment import (DeploymentStrategy, selector_matches, selector_string)

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def deployment(selector=None, labels=None, **spec):
    selector = {"matchLabels": {"app": "web"}} if selector is None else selector
    labels = {"app": "web"} if labels is None else labels
    spec.setdefault("selector", selector)
    spec.setdefault("template", {"metadata": {"labels": labels},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default",
                         "creationTimestamp": THREE_DAYS_AGO},
            "spec": spec}


@pytest.fixture
def s():
    return DeploymentStrategy()


def msgs(errs):
    return [str(e) for e in errs]


def test_discovery_facts(s):
    assert (s.group, s.version, s.plural, s.singular, s.kind) == (
        "apps", "v1", "deployments", "deployment", "Deployment")
    assert s.short_names == ("deploy",) and s.categories == ("all",) and s.has_status


def test_defaults(s):
    obj = deployment()
    s.default(obj)
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["terminationGracePeriodSeconds"] == 30
    assert pod_spec["schedulerName"] == "default-scheduler"
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # Only Pods get these, not pod templates.
    assert "enableServiceLinks" not in pod_spec and "serviceAccountName" not in pod_spec


def test_recreate_gets_no_rolling_update(s):
    obj = deployment(strategy={"type": "Recreate"})
    s.default(obj)
    assert obj["spec"]["strategy"] == {"type": "Recreate"}
    assert s.validate(obj) == []


def test_valid(s):
    obj = deployment()
    s.default(obj)
    assert s.validate(obj) == []


def test_selector_must_match_template_labels(s):
    obj = deployment(labels={"app": "other", "tier": "fe"})
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"other", '
        '"tier":"fe"}: `selector` does not match template `labels`']


def test_selector_required_and_not_empty(s):
    obj = deployment()
    del obj["spec"]["selector"]
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]
    obj = deployment(selector={})
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "deployment"]


def test_template_container_errors_use_template_path(s):
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    s.default(obj)
    assert msgs(s.validate(obj)) == ["spec.template.spec.containers[0].image: Required value"]


def test_template_restart_policy_must_be_always(s):
    obj = deployment()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: '
        '"Always"']


def test_replicas_and_rolling_update(s):
    obj = deployment(replicas=-1, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 0}})
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, "
        'IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0']


def test_progress_deadline_greater_than_min_ready(s):
    obj = deployment(minReadySeconds=600)
    s.default(obj)
    assert msgs(s.validate(obj)) == [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]


def test_selector_is_immutable(s):
    old = deployment()
    s.default(old)
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web2"}}
    new["spec"]["template"]["metadata"]["labels"] = {"app": "web2"}
    assert msgs(s.validate_update(new, old)) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":'
        '"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable']


def test_selector_helpers():
    sel = {"matchLabels": {"b": "2", "a": "1"},
           "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]},
                                {"key": "d", "operator": "DoesNotExist"}]}
    assert selector_string(sel) == "a=1,b=2,c in (x,y),!d"
    assert selector_matches(sel, {"a": "1", "b": "2", "c": "x"})
    assert not selector_matches(sel, {"a": "1", "b": "2", "c": "z"})
    assert not selector_matches(sel, {"a": "1", "b": "2", "c": "x", "d": ""})
    assert not selector_matches(None, {"a": "1"})
    assert selector_matches({}, {"a": "1"})


def test_table(s):
    obj = deployment(replicas=3)
    obj["status"] = {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    assert [c.name for c in s.columns] == ["Name", "Ready", "Up-to-date", "Available", "Age",
                                           "Containers", "Images", "Selector"]
    assert [c.priority for c in s.columns][5:] == [1, 1, 1]
    assert s.table_row(obj) == ["web", "2/3", 3, 2, "3d", "web", "nginx:1.27", "app=web"]
    fresh = deployment()
    s.default(fresh)
    assert s.table_row(fresh)[:4] == ["web", "0/1", 0, 0]
