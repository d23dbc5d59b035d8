import datetime as dt

from nanokube.cli.describe import (camelcase_split, describe_generic, describe_service,
                                   format_endpoint_slices, smart_label)

SVC = {
    "kind": "Service", "apiVersion": "v1",
    "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                 "labels": {"app": "web", "tier": "front"},
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n",
                                 "note": "hi"}},
    "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.20",
             "clusterIPs": ["10.96.0.20"], "ipFamilies": ["IPv4"],
             "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
             "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
             "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
                       {"name": "https", "port": 443, "targetPort": "https",
                        "protocol": "TCP", "nodePort": 30443}]},
    "status": {"loadBalancer": {}},
}

SLICES = [{"ports": [{"name": "", "port": 8080}, {"name": "https", "port": 8443}],
           "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                         {"addresses": ["10.244.0.6"], "conditions": {"ready": False}},
                         {"addresses": ["10.244.0.7"], "conditions": {}}]}]


def test_describe_service_like_kubectl():
    assert describe_service(SVC, SLICES, {"items": []}) == """\
Name:                     web
Namespace:                default
Labels:                   app=web
                          tier=front
Annotations:              note: hi
Selector:                 app=web
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.0.20
IPs:                      10.96.0.20
Port:                     <unset>  80/TCP
TargetPort:               8080/TCP
NodePort:                 <unset>  30080/TCP
Endpoints:                10.244.0.5:8080,10.244.0.7:8080
Port:                     https  443/TCP
TargetPort:               https/TCP
NodePort:                 https  30443/TCP
Endpoints:                10.244.0.5:8443,10.244.0.7:8443
Session Affinity:         None
External Traffic Policy:  Cluster
Internal Traffic Policy:  Cluster
Events:                   <none>
"""


def test_endpoints_without_slices_and_with_many():
    assert format_endpoint_slices([], "") == "<none>"
    many = [{"ports": [{"name": "", "port": 80}],
             "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(5)]}]
    assert format_endpoint_slices(many, "") == \
        "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 2 more..."


def test_events_table():
    now = dt.datetime.now(dt.timezone.utc)
    ts = (now - dt.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = {"items": [{"type": "Normal", "reason": "Type", "firstTimestamp": ts,
                         "lastTimestamp": ts, "count": 1,
                         "source": {"component": "service-controller"},
                         "message": "ClusterIP -> LoadBalancer "}]}
    text = describe_service({**SVC, "spec": {**SVC["spec"], "ports": []}}, None, events)
    tail = text.split("Internal Traffic Policy:  Cluster\n")[1]
    assert tail.startswith("Events:\n  Type    Reason  Age")
    lines = tail.splitlines()
    assert lines[2].startswith("  ----    ------  ---")
    assert lines[3].startswith("  Normal  Type    3") and \
        lines[3].endswith("service-controller  ClusterIP -> LoadBalancer")


def test_smart_labels():
    assert camelcase_split("PDFLoader") == ["PDF", "Loader"]
    assert camelcase_split("vimRPCPlugin") == ["vim", "RPC", "Plugin"]
    assert smart_label("apiVersion") == "API Version"
    assert smart_label("clusterIP") == "Cluster IP"
    assert smart_label("ipFamilies") == "Ip Families"
    assert smart_label("uid") == "UID"
    assert smart_label("v1beta1") == "v1beta1"


def test_generic_describe():
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "d", "namespace": "default", "uid": "u",
                        "managedFields": [{}]},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [
               {"name": "c", "args": ["a", "b"]}]}}}}
    assert describe_generic(obj, None) == """\
Name:         d
Namespace:    default
Labels:       <none>
Annotations:  <none>
API Version:  apps/v1
Kind:         Deployment
Metadata:
  UID:  u
Spec:
  Replicas:  2
  Template:
    Spec:
      Containers:
        Args:
          a
          b
        Name:  c
"""
