"""Server-side printing: metav1.Table envelopes and the helpers cells are made of."""
from __future__ import annotations

import datetime as dt
from typing import Any

from nanokube.apitime import parse_datetime


def human_duration(seconds: float) -> str:
    """duration.HumanDuration from apimachinery."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60 * 2:
        return f"{s}s"
    m = s // 60
    if m < 10:
        sec = s % 60
        return f"{m}m" if sec == 0 else f"{m}m{sec}s"
    if m < 60 * 3:
        return f"{m}m"
    h = m // 60
    if h < 8:
        mm = m % 60
        return f"{h}h" if mm == 0 else f"{h}h{mm}m"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        d, hh = divmod(h, 24)
        return f"{d}d" if hh == 0 else f"{d}d{hh}h"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        y, d = divmod(h // 24, 365)
        return f"{y}y" if d == 0 else f"{y}y{d}d"
    return f"{h // 24 // 365}y"


def since(timestamp: str | None) -> str:
    t = parse_datetime(timestamp)
    if t is None:
        return "<unknown>"
    return human_duration((dt.datetime.now(dt.timezone.utc) - t).total_seconds())


def age(obj: dict) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"))


def partial_metadata(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def table(columns: list[dict], rows: list[tuple[list[Any], dict]], include_object: str,
          list_meta: dict) -> dict:
    """rows: (cells, object) pairs; include_object is Metadata (default), Object or None."""
    out_rows = []
    for cells, obj in rows:
        row: dict = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        out_rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": out_rows}
