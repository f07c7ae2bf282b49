"""The pool's state on disk, so that a simulator killed and started again comes back as XAPI does.

With a state directory (``Simulator(state_dir=DIR)``, ``os-xenapi simulator --state-dir DIR``) the
database is kept in ``DIR/state.json`` and the VDI contents in ``DIR/vdis`` (see :mod:`.vdi_store`).
The pool is written whole. :class:`StateDir` writes the file atomically (temporary file, fsync,
rename) :data:`DEBOUNCE` seconds after a change, and once more at shutdown, so a simulator killed
with SIGKILL loses at most the last fraction of a second. A pool so large that taking its
snapshot holds the loop up for long (about a second for 5,000 VMs) is written less often, so
snapshots take at most :data:`SNAPSHOT_SHARE` of the loop's time. A simulator that starts with
``state.json`` present loads it instead of seeding a new pool.

What survives is what XAPI itself writes to its database file. XAPI declares the ``session`` and
``task`` classes ``PersistNothing`` (``ocaml/idl/datamodel.ml``) and writes no rows for such
tables (``ocaml/database/db_xml.ml``), so after a restart every old session ref gets
``SESSION_INVALID`` and every old task ref ``HANDLE_INVALID``; the official SDK logs in again by
itself on ``SESSION_INVALID``. Operations that were running are gone too, so the
``current_operations`` they left behind are cleared and ``allowed_operations`` recomputed. The
database generation and each object's creation and last-change generations are kept (XAPI keeps
them as ``generation_count``, ``__ctime`` and ``__mtime``), so ``event.from`` tokens taken before
a restart stay meaningful.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .db import Database
from .schema import ApiType, ClassDef, MapType, SetType
from .sm.targets import restore_storage, storage_of
from .values import DateTime

if TYPE_CHECKING:
    from .xapi import Xapi

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
FORMAT = "os-xenapi simulator state"
VERSION = 1
NOT_PERSISTED = frozenset({"session", "task"})  # XAPI's PersistNothing classes
DEBOUNCE = 0.1  # seconds between a change and the write that carries it
SNAPSHOT_SHARE = 0.2  # at most this share of the loop's time goes to taking snapshots
IDLE_WAKE = 1.0  # seconds between two looks at the database when nothing wakes the writer


class StateError(Exception):
    """The state directory or its file cannot be used; the message says which and why."""


def has_state(state_dir: str | os.PathLike[str]) -> bool:
    """Whether ``state_dir`` holds a saved pool."""
    return (Path(state_dir) / STATE_FILE).exists()


# -- the snapshot -----------------------------------------------------------------------------


def snapshot(xapi: Xapi) -> dict[str, Any]:
    """The pool's persistent state as JSON-ready data (the records are shared, not copied)."""
    db = xapi.db
    tables = {cls: rows for cls, rows in db.tables.items() if cls not in NOT_PERSISTED and rows}
    times = {}
    for rows in tables.values():
        for ref in rows:
            change = db.changes.get(ref)
            times[ref] = [change[2], change[0]] if change else [0, 0]
    return {
        "format": FORMAT,
        "version": VERSION,
        "generation": db.generation,
        "message_generation": db.message_generation,
        "tables": tables,
        "times": times,  # ref -> [created generation, last-change generation]
        # Targets, exports and secrets: the storage world outside the database.
        "storage": storage_of(xapi).to_state(),
    }


def dumps(xapi: Xapi) -> tuple[str, int]:
    """(the snapshot as JSON text, the generation it is taken at)."""
    text = json.dumps(snapshot(xapi), separators=(",", ":"), check_circular=False)
    return text, xapi.db.generation


def _involves_datetime(api_type: ApiType) -> bool:
    if isinstance(api_type, SetType):
        return _involves_datetime(api_type.item)
    if isinstance(api_type, MapType):
        return _involves_datetime(api_type.value)
    return api_type.kind == "datetime"


def _revive(api_type: ApiType, value: Any) -> Any:
    """``value`` as read from JSON, with its datetimes made :class:`DateTime` again."""
    if isinstance(api_type, SetType) and isinstance(value, list):
        return [_revive(api_type.item, v) for v in value]
    if isinstance(api_type, MapType) and isinstance(value, dict):
        return {k: _revive(api_type.value, v) for k, v in value.items()}
    if api_type.kind == "datetime" and isinstance(value, str):
        return DateTime(value)
    return value


def _rows(cdef: ClassDef, rows: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(rows, dict):
        raise StateError(f"table {cdef.name} is not a JSON object")
    dated = [(name, f.type) for name, f in cdef.fields.items() if _involves_datetime(f.type)]
    out = {}
    for ref, fields in rows.items():
        if not isinstance(fields, dict):
            raise StateError(f"{cdef.name} {ref} is not a JSON object")
        unknown = set(fields) - set(cdef.fields)
        if unknown:
            raise StateError(f"{cdef.name} {ref} has fields the simulator does not know: "
                             f"{', '.join(sorted(unknown))}")
        record = cdef.new_record()  # fields added to the schema since the save get defaults
        record.update(fields)
        for name, api_type in dated:
            record[name] = _revive(api_type, record[name])
        out[ref] = record
    return out


def _generations(pair: Any, what: str) -> tuple[int, int]:
    if (not isinstance(pair, list) or len(pair) != 2
            or not all(type(g) is int and g >= 0 for g in pair)):
        raise StateError(f"{what} must be two generation numbers, not {pair!r}")
    return pair[0], pair[1]


def restore(xapi: Xapi, state: Any) -> None:
    """Replace the pool's database with ``state`` (a :func:`snapshot`), as a XAPI start would.

    Raises StateError naming what is wrong with ``state``.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StateError(f"not a simulator state (expected \"format\": \"{FORMAT}\")")
    if state.get("version") != VERSION:
        raise StateError(f"state version {state.get('version')!r} is not {VERSION}, "
                         "the only one this simulator reads")
    tables, times = state.get("tables"), state.get("times", {})
    if not isinstance(tables, dict) or not isinstance(times, dict):
        raise StateError("the state needs \"tables\" and \"times\" objects")
    db = Database()
    for cls, rows in tables.items():
        if cls in NOT_PERSISTED:
            continue
        if cls not in db.schema:
            raise StateError(f"the state has a table {cls!r} the simulator does not know")
        for ref, record in _rows(db.schema[cls], rows).items():
            db.tables[cls][ref] = record
            db.class_of[ref] = cls
            if "uuid" in record:
                db.by_uuid[cls][record["uuid"]] = ref
    stamped = []
    for ref, cls in db.class_of.items():
        born, changed = _generations(times.get(ref, [0, 0]), f"times of {ref}")
        stamped.append((changed, ref, cls, born))
    stamped.sort()
    db.changes = OrderedDict((ref, (gen, cls, born, False)) for gen, ref, cls, born in stamped)
    generation, messages = _generations(
        [state.get("generation", 0), state.get("message_generation", 0)], "the generations")
    db.generation = max([generation] + [s[0] for s in stamped])
    db.message_generation = messages
    pools = list(db.tables["pool"])
    if len(pools) != 1:
        raise StateError(f"the state must hold exactly one pool, not {len(pools)}")
    xapi.db = db
    xapi.pool = pools[0]
    xapi.addresses = [host["address"] for host in db.tables["host"].values()]
    xapi.local_sessions.clear()
    _forget_operations(db)
    if isinstance(state.get("storage"), dict):
        restore_storage(xapi, state["storage"])


def _forget_operations(db: Database) -> None:
    """Clear the current_operations of operations that died with the old process."""
    from .ops import device_checks, vm_checks

    vms: set[str] = set()
    for cls, rows in db.tables.items():
        if "current_operations" not in db.schema[cls].fields:
            continue
        for ref, record in list(rows.items()):
            if not record["current_operations"]:
                continue
            db.update(cls, ref, current_operations={})
            if cls == "VM":
                vms.add(ref)
            elif cls in ("VBD", "VIF"):
                vms.add(record["VM"])
            elif cls == "VDI":
                device_checks.update_vdi(db, ref)
    for vm in vms:
        vm_checks.refresh(db, vm)


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state saved in ``path``; raises StateError if it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StateError(f"{path} is not valid JSON ({exc}); move it away to start a new pool") \
            from None


def load(xapi: Xapi) -> None:
    """Restore the pool saved in ``xapi.state_dir``; raises StateError naming the file."""
    path = Path(xapi.state_dir) / STATE_FILE
    state = read(path)
    try:
        restore(xapi, state)
    except StateError as exc:
        raise StateError(f"{path}: {exc}") from None


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so that a crash leaves either the old or the new file."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # as XAPI's
    with open(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must reach the disk
    finally:
        os.close(directory)


# -- the directory and its writer --------------------------------------------------------------


class StateDir:
    """A state directory owned by one running simulator: its lock, its file, and its writer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StateError(f"state directory {self.path} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.file = self.path / STATE_FILE
        self._lock_fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StateError(f"state directory {self.path} is in use by another simulator") \
                from None
        self._xapi: Xapi | None = None
        self._saved = -1
        self._snapshot_seconds = 0.0  # how long the last snapshot held up the loop
        self._writer: asyncio.Task | None = None
        self._saving = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xapi-sim-state")

    def start(self, xapi: Xapi) -> None:
        """Keep the file up to date with ``xapi``'s database; call on the simulator's loop."""
        self._xapi = xapi
        self._saved = -1  # write once at start: a loaded pool may have been tidied up
        self._writer = asyncio.get_running_loop().create_task(self._watch())

    def _dirty(self) -> bool:
        assert self._xapi is not None
        if self._saved < 0:
            return True
        for _ref, _gen, cls, _born, _deleted in self._xapi.db.changes_since(self._saved):
            if cls not in NOT_PERSISTED:
                return True
        return False

    async def _watch(self) -> None:
        assert self._xapi is not None
        while True:
            changed = self._xapi.db.changed_event()
            try:
                await asyncio.wait_for(changed.wait(), IDLE_WAKE)
            except asyncio.TimeoutError:
                pass  # a restart replaces the database, and so the event to wait on
            # Let a burst of changes go out in one write; a pool so big that its snapshot takes
            # long is written less often, so that the loop keeps serving calls.
            await asyncio.sleep(max(DEBOUNCE, self._snapshot_seconds / SNAPSHOT_SHARE))
            if self._dirty():
                await self.save()

    async def save(self) -> None:
        """Write the state now (the snapshot is taken on the loop, the disk work off it)."""
        assert self._xapi is not None
        async with self._saving:
            started = time.monotonic()
            text, generation = dumps(self._xapi)
            self._snapshot_seconds = time.monotonic() - started
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, write_atomic, self.file, text)
            self._saved = generation

    async def close(self) -> None:
        """Stop watching, write the last changes, and let another simulator use the directory."""
        try:
            if self._writer is not None:
                self._writer.cancel()
                await asyncio.gather(self._writer, return_exceptions=True)
                self._writer = None
            if self._xapi is not None and self._dirty():
                await self.save()
        finally:
            self.release()

    def release(self) -> None:
        """Give up the directory without writing (also when the simulator failed to start)."""
        self._executor.shutdown(wait=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
