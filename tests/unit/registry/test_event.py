import datetime as dt

from nanokube.registry.event import EventStrategy


def ago(**kw):
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(**extra):
    obj = {"apiVersion": "v1", "kind": "Event",
           "metadata": {"name": "web.17f0", "namespace": "default",
                        "creationTimestamp": ago(days=3)},
           "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                              "uid": "u-1", "apiVersion": "v1",
                              "fieldPath": "spec.containers{web}"},
           "reason": "Pulled", "message": "Container image pulled ", "type": "Normal",
           "source": {"component": "kubelet", "host": "node-1"},
           "firstTimestamp": ago(days=3), "lastTimestamp": ago(days=3), "count": 4}
    obj.update(extra)
    return obj


def test_discovery_facts():
    s = EventStrategy()
    assert (s.plural, s.singular, s.short_names, s.namespaced) == ("events", "event", ("ev",),
                                                                    True)


def test_columns_and_row():
    s = EventStrategy()
    assert [(c.name, c.priority) for c in s.columns] == [
        ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
        ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]
    assert s.table_row(event()) == ["3d", "Normal", "Pulled", "pod/web", "spec.containers{web}",
                                    "kubelet, node-1", "Container image pulled", "3d", 4,
                                    "web.17f0"]


def test_row_for_new_style_event():
    s = EventStrategy()
    obj = event(firstTimestamp=None, lastTimestamp=None, count=0, source={},
                eventTime=ago(days=3).replace("Z", ".000000Z"),
                reportingComponent="nanokube-controller", reportingInstance="host-1",
                series={"count": 7, "lastObservedTime": ago(days=3)})
    row = s.table_row(obj)
    assert row[0] == "3d" and row[5] == "nanokube-controller, host-1" and row[7] == "3d"
    assert row[8] == 7


def test_involved_object_namespace_must_match():
    s = EventStrategy()
    assert s.validate(event()) == []
    obj = event()
    obj["involvedObject"]["namespace"] = "other"
    assert [str(e) for e in s.validate(obj)] == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace']


def test_new_style_event_needs_reporting_fields():
    s = EventStrategy()
    obj = event(eventTime="2024-01-01T00:00:00.000000Z")
    errs = [str(e) for e in s.validate(obj)]
    assert errs[0] == "reportingComponent: Required value"
    # An empty qualified name is also reported as invalid right after.
    assert errs[1].startswith('reportingComponent: Invalid value: "": name part must be non-empty')
    assert errs[-2:] == ["reportingInstance: Required value", "action: Required value"]


def test_field_labels():
    s = EventStrategy()
    labels = s.field_labels(event())
    assert labels["involvedObject.kind"] == "Pod"
    assert labels["involvedObject.name"] == "web"
    assert labels["involvedObject.namespace"] == "default"
    assert labels["involvedObject.uid"] == "u-1"
    assert labels["involvedObject.resourceVersion"] == ""
    assert labels["reason"] == "Pulled" and labels["type"] == "Normal"
    assert labels["source"] == "kubelet" and labels["reportingComponent"] == ""
