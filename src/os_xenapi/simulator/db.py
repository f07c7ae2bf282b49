"""The simulator's database: one table per class, uuid indexes, relations, and the change log.

Every write goes through :class:`Database` so that three things stay true, as in XAPI:
set-valued back-references (``VM.VBDs``, ``SR.VDIs``, ...) follow the refs that point at them; each
change bumps the database generation and records the object in the change log that ``event.from``
reads; and waiters on that log are woken as soon as something changes.
"""

from __future__ import annotations

import asyncio
import uuid as _uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from .errors import handle_invalid, uuid_invalid
from .schema import NULL_REF, ClassDef, classes

# (class holding the ref, its field, class pointed at, that class's set field): XAPI's one-to-many
# relations among the served classes.
RELATIONS = [
    ("VBD", "VM", "VM", "VBDs"),
    ("VBD", "VDI", "VDI", "VBDs"),
    ("VDI", "SR", "SR", "VDIs"),
    ("PBD", "SR", "SR", "PBDs"),
    ("PBD", "host", "host", "PBDs"),
    ("VIF", "VM", "VM", "VIFs"),
    ("VIF", "network", "network", "VIFs"),
    ("PIF", "host", "host", "PIFs"),
    ("PIF", "network", "network", "PIFs"),
    ("VM", "resident_on", "host", "resident_VMs"),
    ("console", "VM", "VM", "consoles"),
    ("host_cpu", "host", "host", "host_CPUs"),
    ("task", "subtask_of", "task", "subtasks"),
    ("VM", "snapshot_of", "VM", "snapshots"),
    ("VDI", "snapshot_of", "VDI", "snapshots"),
    ("VM", "parent", "VM", "children"),
]


def new_ref() -> str:
    return f"OpaqueRef:{_uuid.uuid4()}"


def new_uuid() -> str:
    return str(_uuid.uuid4())


class Database:
    """All objects of one simulated pool, keyed by class then ref."""

    def __init__(self) -> None:
        self.schema: dict[str, ClassDef] = classes()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in self.schema}
        self.by_uuid: dict[str, dict[str, str]] = {c: {} for c in self.schema}
        self.class_of: dict[str, str] = {}
        self.generation = 0
        self.message_generation = 0
        # ref -> (generation of last change, class, created generation, deleted?)
        self.changes: OrderedDict[str, tuple[int, str, int, bool]] = OrderedDict()
        self._relations_from: dict[str, list[tuple[str, str, str]]] = {}
        for child, fld, parent, set_field in RELATIONS:
            self._relations_from.setdefault(child, []).append((fld, parent, set_field))
        self._changed: asyncio.Event | None = None

    # -- change tracking -------------------------------------------------------------------

    def _touch(self, cls: str, ref: str, *, created: bool = False, deleted: bool = False) -> None:
        self.generation += 1
        if cls == "message":
            self.message_generation += 1
        previous = self.changes.pop(ref, None)
        born = self.generation if created or previous is None else previous[2]
        self.changes[ref] = (self.generation, cls, born, deleted)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def touch(self, ref: str) -> None:
        """Record a change to an object (``event.inject``, or a write made in place)."""
        self._touch(self.class_of[ref], ref)

    def changed_event(self) -> asyncio.Event:
        """An event set at the next change; call from the simulator's event loop."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    # -- reads -----------------------------------------------------------------------------

    def get(self, cls: str, ref: str) -> dict[str, Any]:
        """The record of ``ref``; raises ``HANDLE_INVALID [cls, ref]`` if it is not a ``cls``."""
        try:
            return self.tables[cls][ref]
        except KeyError:
            raise handle_invalid(cls, ref) from None

    def exists(self, cls: str, ref: str) -> bool:
        return ref in self.tables[cls]

    def by_uuid_ref(self, cls: str, uuid: str) -> str:
        try:
            return self.by_uuid[cls][uuid]
        except KeyError:
            raise uuid_invalid(cls, uuid) from None

    def all(self, cls: str) -> dict[str, dict[str, Any]]:
        return self.tables[cls]

    def find(self, cls: str, **match: Any) -> list[str]:
        """Refs of ``cls`` whose fields equal every given value."""
        return [
            ref
            for ref, rec in self.tables[cls].items()
            if all(rec.get(k) == v for k, v in match.items())
        ]

    # -- writes ----------------------------------------------------------------------------

    def create(self, cls: str, fields: dict[str, Any] | None = None, ref: str | None = None) -> str:
        """Insert a new object with defaults for every field not given; returns its ref."""
        record = self.schema[cls].new_record()
        if fields:
            self._check_fields(cls, record, fields)
            record.update(fields)
        ref = ref or new_ref()
        if "uuid" in record and not record["uuid"]:
            record["uuid"] = new_uuid()
        self.tables[cls][ref] = record
        self.class_of[ref] = cls
        if "uuid" in record:
            self.by_uuid[cls][record["uuid"]] = ref
        self._touch(cls, ref, created=True)
        for fld, parent, set_field in self._relations_from.get(cls, ()):
            self._link(record.get(fld), parent, set_field, ref, fresh=True)
        return ref

    @staticmethod
    def _check_fields(cls: str, record: dict[str, Any], fields: dict[str, Any]) -> None:
        unknown = set(fields) - set(record)
        if unknown:
            raise KeyError(f"{cls} has no field {', '.join(sorted(unknown))}")

    def destroy(self, cls: str, ref: str) -> None:
        record = self.get(cls, ref)
        for fld, parent, set_field in self._relations_from.get(cls, ()):
            self._unlink(record.get(fld), parent, set_field, ref)
        del self.tables[cls][ref]
        self.class_of.pop(ref, None)
        if "uuid" in record:
            self.by_uuid[cls].pop(record["uuid"], None)
        self._touch(cls, ref, deleted=True)

    def set(self, cls: str, ref: str, field: str, value: Any) -> None:
        """Write one field, keeping back-references and the change log right."""
        record = self.get(cls, ref)
        old = record.get(field)
        for fld, parent, set_field in self._relations_from.get(cls, ()):
            if fld == field and old != value:
                self._unlink(old, parent, set_field, ref)
                self._link(value, parent, set_field, ref)
        if field == "uuid":
            self.by_uuid[cls].pop(old, None)
            self.by_uuid[cls][value] = ref
        record[field] = value
        self._touch(cls, ref)

    def update(self, cls: str, ref: str, **fields: Any) -> None:
        """Write several fields as one change."""
        relation_fields = {f for f, _, _ in self._relations_from.get(cls, ())}
        record = self.get(cls, ref)
        self._check_fields(cls, record, fields)
        for name, value in fields.items():
            if name in relation_fields or name == "uuid":
                self.set(cls, ref, name, value)
            else:
                record[name] = value
        self._touch(cls, ref)

    def _link(
        self, target: Any, parent: str, set_field: str, ref: str, fresh: bool = False
    ) -> None:
        if target and target != NULL_REF and target in self.tables[parent]:
            members = self.tables[parent][target][set_field]
            if fresh or ref not in members:  # a brand-new ref cannot be a member yet
                members.append(ref)
                self._touch(parent, target)

    def _unlink(self, target: Any, parent: str, set_field: str, ref: str) -> None:
        if target and target != NULL_REF and target in self.tables[parent]:
            members = self.tables[parent][target][set_field]
            if ref in members:
                members.remove(ref)
                self._touch(parent, target)

    def changes_since(self, generation: int) -> Iterable[tuple[str, int, str, int, bool]]:
        """(ref, generation, class, created generation, deleted) newest first, newer than given."""
        for ref in reversed(self.changes):
            gen, cls, born, deleted = self.changes[ref]
            if gen <= generation:
                break
            yield ref, gen, cls, born, deleted
