import datetime as dt

from nanokube.registry.lease import LeaseStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def test_lease():
    s = LeaseStrategy()
    assert (s.group, s.version, s.plural, s.singular, s.short_names) == (
        "coordination.k8s.io", "v1", "leases", "lease", ())
    obj = {"metadata": {"name": "node-1", "namespace": "kube-node-lease",
                        "creationTimestamp": THREE_DAYS_AGO},
           "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert s.validate(obj) == []
    assert [c.name for c in s.columns] == ["Name", "Holder", "Age"]
    assert s.table_row(obj) == ["node-1", "node-1", "3d"]
    obj["spec"] = {"leaseDurationSeconds": 0, "leaseTransitions": -1}
    assert [str(e) for e in s.validate(obj)] == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
        "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"]
    assert s.table_row(obj)[1] == ""
