"""CronJobs (batch/v1): SetDefaults_CronJob, ValidateCronJobCreate / ValidateCronJobUpdate and
the CronJob printer of kubectl 1.32.

The schedule is standard 5-field cron or a descriptor (@hourly, @daily, @every 1h30m...), parsed
by `parse_schedule`; its error texts are those of robfig/cron, the parser Kubernetes uses, since
validation reports them verbatim ("expected exactly 5 fields, found 1: [bogus]").
"""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.deployment import (TEMPLATE_COLUMNS, containers_cells, default_template,
                                          nonnegative, selector_string)
from nanokube.registry.job import validate_job_spec

ALLOW, FORBID, REPLACE = "Allow", "Forbid", "Replace"
CONCURRENCY_POLICIES = [ALLOW, FORBID, REPLACE]
MAX_NAME_LENGTH = 52     # job names add "-" and up to 10 digits of minutes: 63 in all
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
               "@hourly": "0 * * * *"}
# (name, minimum, maximum) of the five fields, as robfig/cron bounds them
FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 6)]
MONTH_NAMES = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAY_NAMES = "sun mon tue wed thu fri sat".split()
TIME_ZONE_PART = re.compile(r"^[A-Za-z\.\-_0-9+]{1,14}$")


class ScheduleError(ValueError):
    """An unparseable schedule; str() is robfig/cron's message."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A parsed schedule: `next(t)` is the first activation strictly after t (aware datetime)."""
    expr: str
    every: float | None = None      # @every <duration>, in seconds

    def next(self, after: datetime) -> datetime:
        if self.every is not None:
            # robfig/cron's ConstantDelaySchedule: whole seconds, from the given time
            return after.replace(microsecond=0) + timedelta(seconds=self.every)
        return croniter(self.expr, after).get_next(datetime)


DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the positive durations @every takes."""
    if not text or DURATION_PART.sub("", text):
        raise ScheduleError(f'failed to parse duration @every {text}: time: invalid duration '
                            f'"{text}"')
    return sum(float(n) * DURATION_UNITS[u] for n, u in DURATION_PART.findall(text))


def _check_value(text: str, names: list[str] | None, low: int, high: int) -> int:
    if names and text.lower() in names:
        return names.index(text.lower()) + (low if names is MONTH_NAMES else 0)
    try:
        return int(text)
    except ValueError:
        raise ScheduleError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": '
                            f'invalid syntax') from None


def _check_field(text: str, low: int, high: int, names: list[str] | None) -> None:
    """robfig/cron's getRange over each comma-separated part, for its error messages."""
    for part in text.split(","):
        rng, _, step = part.partition("/")
        if rng in ("*", "?"):
            start, end = low, high
        else:
            lo, _, hi = rng.partition("-")
            start = _check_value(lo, names, low, high)
            end = _check_value(hi, names, low, high) if hi else start
        if step:
            if _check_value(step, None, low, high) <= 0:
                raise ScheduleError(f"step of range should be a positive number: {part}")
        if start < low:
            raise ScheduleError(f"beginning of range ({start}) below minimum ({low}): {part}")
        if end > high:
            raise ScheduleError(f"end of range ({end}) above maximum ({high}): {part}")
        if start > end:
            raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): "
                                f"{part}")


def parse_schedule(schedule: str) -> Schedule:
    """cron.ParseStandard: 5 fields or a descriptor; TZ=/CRON_TZ= prefixes are for validation
    to refuse (the CronJob has spec.timeZone) and are stripped here."""
    text = schedule.strip()
    if not text:
        raise ScheduleError("empty spec string")
    if text.startswith(("TZ=", "CRON_TZ=")):
        tz, _, text = text.partition(" ")
        try:
            ZoneInfo(tz.split("=", 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"provided bad location {tz.split('=', 1)[1]}: unknown time "
                                f"zone {tz.split('=', 1)[1]}") from None
        text = text.strip()
    if text.startswith("@"):
        if text.startswith("@every "):
            return Schedule(text, every=_parse_duration(text[len("@every "):].strip()))
        if text not in DESCRIPTORS:
            raise ScheduleError(f"unrecognized descriptor: {text}")
        return Schedule(DESCRIPTORS[text])
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: "
                            f"[{' '.join(fields)}]")
    for value, (_, low, high), names in zip(fields, FIELDS,
                                            [None, None, None, MONTH_NAMES, DAY_NAMES]):
        _check_field(value, low, high, names)
    if not croniter.is_valid(" ".join(fields)):
        raise ScheduleError(f"unparseable schedule: {text}")
    return Schedule(" ".join(fields))


def location(time_zone: str | None):
    """The zone the schedule is read in: spec.timeZone, else UTC (the controller manager's
    local time in Kubernetes; nanokube's run in UTC)."""
    return ZoneInfo(time_zone) if time_zone else timezone.utc


# ---- defaulting ---------------------------------------------------------------------------------

def default_cronjob(obj: dict) -> None:
    """SetDefaults_CronJob, and the pod defaults of the job template."""
    spec = obj.setdefault("spec", {})
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = ALLOW
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    template = spec.get("jobTemplate")
    if isinstance(template, dict) and isinstance(template.setdefault("spec", {}), dict):
        default_template(template["spec"])


# ---- validation ---------------------------------------------------------------------------------

def validate_schedule(schedule: Any, time_zone: Any) -> list[FieldError]:
    field = "spec.schedule"
    if not schedule:
        return [E.required(field)]
    errs = []
    try:
        parse_schedule(schedule)
    except ScheduleError as e:
        errs.append(E.invalid(field, schedule, str(e)))
    if "TZ" in schedule:
        errs.append(E.invalid(field, schedule, "cannot use TZ or CRON_TZ in schedule, use "
                              "timeZone field instead"))
    return errs


def validate_time_zone(time_zone: Any) -> list[FieldError]:
    field = "spec.timeZone"
    if time_zone is None:
        return []
    if time_zone == "":
        return [E.invalid(field, time_zone, "timeZone must be nil or non-empty string")]
    for part in time_zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not TIME_ZONE_PART.match(part):
            return [E.invalid(field, time_zone, f"unknown time zone {time_zone}")]
    if time_zone.lower() == "local":
        return [E.invalid(field, time_zone, "timeZone must be an explicit time zone as defined "
                          "in https://www.iana.org/time-zones")]
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [E.invalid(field, time_zone, f"unknown time zone {time_zone}")]
    return []


def validate_job_template(template: Any) -> list[FieldError]:
    """ValidateJobTemplateSpec: the Job spec's rules under spec.jobTemplate.spec, without the
    selector the API server only makes for a Job."""
    prefix = "spec.jobTemplate.spec"
    if not isinstance(template, dict):
        return [E.required("spec.jobTemplate")]
    spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    errs = []
    for err in validate_job_spec(spec):
        if err.field == "spec.selector" and err.type == "FieldValueRequired":
            continue
        errs.append(dataclasses.replace(err, field=prefix + err.field[len("spec"):]))
    if spec.get("manualSelector"):
        errs.append(E.not_supported(f"{prefix}.manualSelector", spec["manualSelector"],
                                    ["nil", "false"]))
    return errs


def validate_cronjob_spec(spec: dict) -> list[FieldError]:
    errs = validate_schedule(spec.get("schedule"), spec.get("timeZone"))
    errs += validate_time_zone(spec.get("timeZone"))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.append(E.required("spec.concurrencyPolicy"))
    elif policy not in CONCURRENCY_POLICIES:
        errs.append(E.not_supported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                "failedJobsHistoryLimit"):
        errs += nonnegative(spec.get(key), f"spec.{key}")
    return errs + validate_job_template(spec.get("jobTemplate"))


def validate_cronjob(obj: dict) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    errs = V.validate_object_meta(meta, True)
    name = meta.get("name") or ""
    if len(name) > MAX_NAME_LENGTH:
        errs.append(E.invalid("metadata.name", name,
                              f"must be no more than {MAX_NAME_LENGTH} characters"))
    return errs + validate_cronjob_spec(obj.get("spec") or {})


# ---- printing -----------------------------------------------------------------------------------

def _job_template_view(obj: dict) -> dict:
    """The job template's spec, shaped like a workload for containers_cells."""
    return ((obj.get("spec") or {}).get("jobTemplate") or {})


class CronJobStrategy(Strategy):
    group = "batch"
    kind = "CronJob"
    plural = "cronjobs"
    singular = "cronjob"
    short_names = ("cj",)
    categories = ("all",)
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Schedule", description="The schedule in Cron format, see "
               "https://en.wikipedia.org/wiki/Cron."),
        Column("Timezone", description="The time zone name for the given schedule, see "
               "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        Column("Suspend", type="boolean", description="This flag tells the controller to "
               "suspend subsequent executions, it does not apply to already started "
               "executions. Defaults to false."),
        Column("Active", type="integer", description="A list of pointers to currently running "
               "jobs."),
        Column("Last Schedule", description="Information when was the last time the job was "
               "successfully scheduled."),
        AGE_COLUMN,
        *TEMPLATE_COLUMNS,
        Column("Selector", priority=1, description="A label query over pods that should match "
               "the pod count. Normally, the system sets this field for you."),
    ]

    def default(self, obj: dict) -> None:
        default_cronjob(obj)

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_cronjob(obj)

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + validate_cronjob_spec(new.get("spec") or {})

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        template = _job_template_view(obj)
        containers, images = containers_cells(template)
        last = status.get("lastScheduleTime")
        selector = (template.get("spec") or {}).get("selector")
        return [obj["metadata"]["name"], spec.get("schedule", ""),
                spec.get("timeZone") or "<none>", bool(spec.get("suspend")),
                len(status.get("active") or []), since(last) if last else "<none>",
                since(obj["metadata"].get("creationTimestamp")), containers, images,
                selector_string(selector) if selector else "<none>"]


def scheduled_after(schedule: Schedule, after: float, tz) -> float:
    """The first activation after a Unix time, read in the zone tz."""
    return schedule.next(datetime.fromtimestamp(after, tz)).timestamp()


def last_at_or_before(schedule: Schedule, tz, known: float, now: float) -> float:
    """The last activation at or before now, given one (known) that is."""
    if schedule.every is not None:
        return known + (now - known) // schedule.every * schedule.every
    prev = croniter(schedule.expr, datetime.fromtimestamp(now, tz)).get_prev(datetime)
    t = prev.timestamp()
    return now if scheduled_after(schedule, t, tz) <= now else t
