"""The strategy of a kind: everything the generic API machinery needs to know about it.

Each kind lives in its own module under `nanokube/registry/` and subclasses `Strategy`.
Objects are plain JSON-shaped dicts in the storage version (`Strategy.version`). The generic
machinery (nanokube/api) does the rest: metadata (uid, resourceVersion, timestamps,
generation), storage, list/watch, patch, tables' envelope, discovery and OpenAPI.

Order of calls on create:  convert_from_version -> default -> prepare_create -> validate ->
begin_create (allocations) -> store -> txn.commit()   (txn.rollback() if the store write fails)
On update: ... -> default -> prepare_update(new, old) -> validate_update(new, old) -> begin_update.
On delete: store delete -> begin_delete(old).commit().
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nanokube.api.errors import FieldError


@dataclass
class ServerConfig:
    """Settings of the API server that strategies need (ranges for allocation...)."""
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: str = "30000-32767"


class Txn:
    """Side effects of a write outside the store (IP/port allocations), applied after the write."""

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


NOOP_TXN = Txn()


@dataclass
class Column:
    """One Table column: metav1.TableColumnDefinition."""
    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


NAME_COLUMN = Column("Name", format="name", description="Name must be unique within a namespace.")
AGE_COLUMN = Column("Age", description="CreationTimestamp is a timestamp representing the "
                    "server time when this object was created.")


class Strategy:
    group: str = ""                    # "" is the core group
    version: str = "v1"                # storage and preferred version
    served_versions: tuple[str, ...] = ("v1",)
    deprecated_versions: dict[str, str] = {}   # version -> Warning text sent on every request
    kind: str = ""
    plural: str = ""
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    namespaced: bool = True
    has_status: bool = False           # serves the /status subresource
    return_deleted_object: bool = False  # DELETE answers with the object (Services do)
    columns: list[Column] = [NAME_COLUMN, AGE_COLUMN]

    def __init__(self, config: ServerConfig | None = None):
        self.config = config or ServerConfig()

    # ---- versions -------------------------------------------------------------------------
    def convert_to_version(self, obj: dict, version: str) -> dict:
        """From the storage version to `version` (a copy when they differ)."""
        return obj

    def convert_from_version(self, obj: dict, version: str) -> dict:
        """From `version` to the storage version."""
        return obj

    # ---- writes ---------------------------------------------------------------------------
    def default(self, obj: dict) -> None:
        """SetDefaults_<Kind>, in place."""

    def prepare_create(self, obj: dict) -> None:
        """PrepareForCreate: e.g. clear status of kinds with a status subresource."""
        if self.has_status:
            obj.pop("status", None)

    def prepare_update(self, new: dict, old: dict) -> None:
        """PrepareForUpdate for the main resource: status is kept from the old object."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def prepare_status_update(self, new: dict, old: dict) -> None:
        """For /status: everything but status comes from the old object."""
        for key in list(new):
            if key not in ("status", "metadata", "apiVersion", "kind"):
                del new[key]
        for key, value in old.items():
            if key not in ("status", "metadata", "apiVersion", "kind"):
                new[key] = value

    def validate(self, obj: dict) -> list[FieldError]:
        return []

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        return self.validate(new)

    def warnings(self, obj: dict, old: dict | None = None) -> list[str]:
        return []

    def begin_create(self, obj: dict) -> Txn:
        """Allocate what the object needs (may fill fields, may raise StatusError)."""
        return NOOP_TXN

    def begin_update(self, new: dict, old: dict) -> Txn:
        return NOOP_TXN

    def begin_delete(self, obj: dict) -> Txn:
        return NOOP_TXN

    async def allocate_create(self, obj: dict, dry_run: bool = False) -> Txn:
        """begin_create, made safe where several API servers share the store (claims)."""
        return self.begin_create(obj)

    async def allocate_update(self, new: dict, old: dict, dry_run: bool = False) -> Txn:
        return self.begin_update(new, old)

    async def share_allocations(self, store) -> None:
        """The store is shared with other API servers: allocate through it from now on."""

    async def stop_sharing(self) -> None:
        pass

    def deletion_grace_seconds(self, obj: dict, options: dict) -> int:
        """Seconds of graceful deletion (0: delete at once). Pods on a node override this."""
        return 0

    def restore(self, objects: list[dict]) -> None:
        """Called once at start with every stored object: rebuild allocations."""

    # ---- reads ----------------------------------------------------------------------------
    def table_row(self, obj: dict) -> list[Any]:
        """Cells for `columns`, the Age cell included (use nanokube.api.tables.age)."""
        from nanokube.api.tables import age
        return [obj["metadata"]["name"], age(obj)]

    def field_labels(self, obj: dict) -> dict[str, str]:
        """Selectable fields beyond metadata.name and metadata.namespace."""
        return {}


@dataclass
class Registry:
    strategies: list[Strategy] = field(default_factory=list)

    def by_resource(self, group: str, plural: str) -> Strategy | None:
        for s in self.strategies:
            if s.group == group and s.plural == plural:
                return s
        return None

    def by_kind(self, group: str, kind: str) -> Strategy | None:
        for s in self.strategies:
            if s.group == group and s.kind == kind:
                return s
        return None
