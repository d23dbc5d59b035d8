"""CronJob defaults, validation messages (Kubernetes' and robfig/cron's words) and printer."""
from __future__ import annotations

import copy

import pytest

from nanokube.registry.base import ServerConfig
from nanokube.registry.cronjob import (CronJobStrategy, ScheduleError, default_cronjob,
                                       parse_schedule, validate_cronjob)

POD = {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox", "command": ["echo", "hi"]}]}}


def cronjob(**spec) -> dict:
    obj = {"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": "tick", "namespace": "default"},
           "spec": {"schedule": "*/1 * * * *",
                    "jobTemplate": {"spec": {"template": copy.deepcopy(POD)}}, **spec}}
    default_cronjob(obj)
    return obj


def messages(obj: dict) -> list[str]:
    return [str(e) for e in validate_cronjob(obj)]


def test_defaults():
    spec = cronjob()["spec"]
    assert spec["concurrencyPolicy"] == "Allow" and spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 1
    # the pod template under the job template is defaulted like any other
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_valid_cronjob_has_no_errors():
    assert messages(cronjob()) == []
    assert messages(cronjob(schedule="@hourly", timeZone="Europe/Berlin")) == []


@pytest.mark.parametrize("schedule,message", [
    ("bogus", 'spec.schedule: Invalid value: "bogus": expected exactly 5 fields, found 1: '
              '[bogus]'),
    ("61 * * * *", 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above '
                   'maximum (59): 61'),
    ("@fortnightly", 'spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: '
                     '@fortnightly'),
    ("", "spec.schedule: Required value"),
])
def test_schedule_messages(schedule, message):
    assert messages(cronjob(schedule=schedule)) == [message]


def test_tz_in_schedule_is_refused():
    got = messages(cronjob(schedule="CRON_TZ=UTC 0 * * * *"))
    assert got == ['spec.schedule: Invalid value: "CRON_TZ=UTC 0 * * * *": cannot use TZ or '
                   'CRON_TZ in schedule, use timeZone field instead']


@pytest.mark.parametrize("tz,message", [
    ("Mars/Olympus", 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone '
                     'Mars/Olympus'),
    ("", 'spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string'),
    ("Local", 'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone '
              'as defined in https://www.iana.org/time-zones'),
])
def test_time_zone_messages(tz, message):
    assert messages(cronjob(timeZone=tz)) == [message]


def test_spec_rules():
    obj = cronjob(concurrencyPolicy="Sometimes", startingDeadlineSeconds=-1)
    obj["metadata"]["name"] = "x" * 53
    obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    got = messages(obj)
    assert 'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: ' \
           '"Allow", "Forbid", "Replace"' in got
    assert "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal " \
           "to 0" in got
    assert f'metadata.name: Invalid value: "{"x" * 53}": must be no more than 52 characters' \
        in got
    assert any(m.startswith("spec.jobTemplate.spec.template.spec.restartPolicy: Required")
               for m in got), got


def test_parse_schedule_descriptors_and_names():
    assert parse_schedule("@daily").expr == "0 0 * * *"
    assert parse_schedule("@every 1h30m").every == 5400
    parse_schedule("0 9 * jan-mar mon-fri")
    with pytest.raises(ScheduleError, match="beginning of range"):
        parse_schedule("5-2 * * * *")


def test_printer_row():
    s = CronJobStrategy(ServerConfig())
    obj = cronjob(timeZone="Europe/Berlin")
    obj["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    row = s.table_row(obj)
    assert [c.name for c in s.columns] == ["Name", "Schedule", "Timezone", "Suspend", "Active",
                                           "Last Schedule", "Age", "Containers", "Images",
                                           "Selector"]
    assert row[1:6] == ["*/1 * * * *", "Europe/Berlin", False, 0, "<none>"]
    assert row[7:] == ["c", "busybox", "<none>"]
