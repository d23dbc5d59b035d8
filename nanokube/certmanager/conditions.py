"""Status conditions of cert-manager's kinds (Ready, Issuing), as cert-manager sets them: the
lastTransitionTime changes only when the status does."""
from __future__ import annotations

from nanokube.apitime import now_rfc3339


def get(obj: dict, type_: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def with_condition(obj: dict, type_: str, status: str, reason: str, message: str) -> list[dict]:
    """The object's conditions with `type_` set (a new list; the object is not changed)."""
    generation = (obj.get("metadata") or {}).get("generation")
    old = get(obj, type_)
    cond = {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": (old or {}).get("lastTransitionTime")
            if old and old.get("status") == status else now_rfc3339()}
    if generation is not None:
        cond["observedGeneration"] = generation
    out = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") != type_]
    return out + [cond]


def without_condition(obj: dict, type_: str) -> list[dict]:
    return [c for c in (obj.get("status") or {}).get("conditions") or []
            if c.get("type") != type_]


def is_true(obj: dict, type_: str) -> bool:
    return (get(obj, type_) or {}).get("status") == "True"
