"""Jobs: SetDefaults_Job, the generated selector, validation in Kubernetes' words, the
immutable template, the printer columns of kubectl 1.32."""
from __future__ import annotations

import copy

from nanokube.registry.job import JobStrategy

S = JobStrategy()


def job(**spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {**spec, "template": {"spec": {
                "restartPolicy": spec.pop("restartPolicy", "Never"),
                "containers": [{"name": "c", "image": "busybox"}]}}}}


def created(obj: dict) -> dict:
    S.default(obj)
    S.prepare_create(obj)
    return obj


def errors(obj: dict) -> list[str]:
    return [str(e) for e in S.validate(obj)]


def test_defaults():
    spec = created(job())["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "manualSelector" not in spec
    only_parallelism = created(job(parallelism=3))["spec"]
    assert only_parallelism["parallelism"] == 3 and "completions" not in only_parallelism
    assert created(job(podFailurePolicy={"rules": []}))["spec"]["podReplacementPolicy"] == \
        "Failed"
    assert created(job(backoffLimitPerIndex=1))["spec"]["backoffLimit"] == 2 ** 31 - 1


def test_generated_selector_and_labels():
    obj = created(job())
    labels = {"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
              "controller-uid": "u-1", "job-name": "pi"}
    assert obj["spec"]["template"]["metadata"]["labels"] == labels
    assert obj["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid":
                                                       "u-1"}}
    assert obj["metadata"]["labels"] == labels
    assert errors(obj) == []


def test_manual_selector():
    obj = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    obj["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    assert errors(created(obj)) == []
    assert created(copy.deepcopy(obj))["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    obj = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    assert any(e.startswith("spec.template.metadata.labels: Invalid value: ") and
               e.endswith("`selector` does not match template `labels`")
               for e in errors(created(obj)))


def test_a_selector_not_generated_is_rejected():
    obj = job(selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}})
    assert any("`selector` not auto-generated" in e for e in errors(created(obj)))


def test_restart_policy_must_be_never_or_on_failure():
    obj = created(job(restartPolicy="Always"))
    assert 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", ' \
        '"Never"' in errors(obj)
    obj = job()
    del obj["spec"]["template"]["spec"]["restartPolicy"]      # defaulted to Always
    assert 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", ' \
        '"Never"' in errors(created(obj))
    assert errors(created(job(restartPolicy="OnFailure"))) == []


def test_numbers_and_modes():
    obj = created(job(parallelism=-1, backoffLimit=-2, completionMode="Sometimes"))
    got = errors(obj)
    assert "spec.parallelism: Invalid value: -1: must be greater than or equal to 0" in got
    assert "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0" in got
    assert 'spec.completionMode: Unsupported value: "Sometimes": supported values: ' \
        '"NonIndexed", "Indexed"' in got
    obj = created(job(parallelism=2, completionMode="Indexed"))
    assert "spec.completions: Required value: when completion mode is Indexed" in errors(obj)
    long = job(completions=10, completionMode="Indexed")
    long["metadata"]["name"] = "x" * 62
    assert any("will not able to create pod with invalid DNS label: " + "x" * 62 + "-9" in e
               for e in errors(created(long)))


def test_template_and_completions_are_immutable_but_parallelism_is_not():
    old = created(job(completions=3))
    new = copy.deepcopy(old)
    new["spec"]["parallelism"] = 3
    assert S.validate_update(new, old) == []
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx"
    new["spec"]["completions"] = 4
    got = [str(e) for e in S.validate_update(new, old)]
    assert "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable" in got
    assert "spec.completions: Invalid value: 4: field is immutable" in got


def test_printer_columns():
    names = [c.name for c in S.columns]
    assert names == ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images",
                     "Selector"]
    assert [c.priority for c in S.columns][5:] == [1, 1, 1]
    obj = created(job(completions=3))
    obj["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    row = S.table_row(obj)
    assert row[:4] == ["pi", "Running", "0/3", ""]
    assert row[5:] == ["c", "busybox", "batch.kubernetes.io/controller-uid=u-1"]
    obj["status"] = {"succeeded": 3, "startTime": "2020-01-01T00:00:00Z",
                     "completionTime": "2020-01-01T00:01:05Z",
                     "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                    {"type": "Complete", "status": "True"}]}
    assert S.table_row(obj)[1:4] == ["Complete", "3/3", "65s"]
    obj["status"]["conditions"] = [{"type": "FailureTarget", "status": "True"}]
    assert S.table_row(obj)[1] == "FailureTarget"
    work_queue = created(job(parallelism=2))
    assert S.table_row(work_queue)[2] == "0/1 of 2"


def test_kubectl_create_job_protobuf_body():
    """What `kubectl create job` sends (application/vnd.kubernetes.protobuf) decodes."""
    from nanokube.api import decode
    from nanokube.api import protobuf as pb

    def field(n, payload: bytes) -> bytes:
        return bytes([n << 3 | 2, len(payload)]) + payload

    def varint(n, value: int) -> bytes:
        return bytes([n << 3, value])
    container = field(1, b"smoke") + field(2, b"busybox") + field(3, b"wget")
    pod_spec = field(2, container) + field(3, b"Never")
    spec = field(6, field(2, pod_spec)) + varint(7, 1)
    raw = field(1, field(1, b"smoke")) + field(2, spec)
    unknown = field(1, field(1, b"batch/v1") + field(2, b"Job")) + field(2, raw)
    obj, _ = decode.decode_object(pb.MAGIC + unknown, "application/vnd.kubernetes.protobuf")
    assert obj["kind"] == "Job" and obj["metadata"]["name"] == "smoke"
    assert obj["spec"]["backoffLimit"] == 1
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert obj["spec"]["template"]["spec"]["containers"][0]["command"] == ["wget"]
