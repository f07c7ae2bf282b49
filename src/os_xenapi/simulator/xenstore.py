"""The simulated xenstore of each host, and the small socket that dom0 commands reach it through.

Each host has its own tree, as each real host runs its own xenstored. The tree follows the
database instead of being written by the VM handlers: before every operation on a host's tree,
the domains there are compared with the running domains XAPI knows on that host (its control
domain, and each VM resident on it that is Running or Paused, by ``domid``). A domain that is
gone loses ``/local/domain/<domid>`` and ``/vm/<uuid>``; a new one gets them, filled the way
xenopsd fills them at domain creation (a subset)::

    /local/domain/<domid>/name          VM name_label ("Domain-0" for dom0)
                         /domid         <domid>
                         /vm            /vm/<uuid>
                         /memory/static-max, /memory/target   in KiB
                         /platform/<k>  from VM.platform (guests)
                         /vm-data/...   VM.xenstore_data keys that start with "vm-data"
                         /data, /control, /attr   empty, for the guest agent and tools
    /vm/<uuid>/uuid, /vm/<uuid>/name

A reboot gives the VM a new domid, hence a fresh tree; a write under a domain lasts as long as
that domain does.

A guest's own programs (its agent) see the tree as xenstore watches let them: each callable in
:attr:`Xenstore.watches` is called with the host and the path after every write, once the value
is in place (see :mod:`.guest_agent`).

Dom0 commands (``xenstore-read`` and friends in ``dom0env/bin``) do not speak xenstored's binary
protocol: they send one JSON object per line to :class:`XenstoreServer`, a Unix socket whose
path they find in ``XENSTORED_SIM_SOCKET``, with the host's uuid in ``XAPI_SIM_HOST``::

    {"op": "read"|"write"|"directory"|"walk"|"rm"|"exists", "host": uuid, "path": p, ...}
    -> {"ok": result}  or  {"error": "ENOENT"|"EINVAL"|..., "message": text}

``write`` also takes ``value``; ``rm`` takes ``parents`` (also remove emptied parents, as
``xenstore-rm -t``). Relative paths are relative to ``/local/domain/0``, dom0's home.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from .errors import ApiError

LOG = logging.getLogger(__name__)

MAX_PATH = 3072  # xenstored's XENSTORE_ABS_PATH_MAX
HOME = "/local/domain/0"  # where a dom0 tool's relative paths start
_VALID_PATH = re.compile(r"/|(/[A-Za-z0-9_@-]+)+")
_RUNNING = ("Running", "Paused")
KiB = 1024


class XenstoreError(Exception):
    """A failed xenstore operation: ``code`` is the errno name xenstored answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Node:
    """One xenstore node: a string value and named children, in the order they were made."""

    __slots__ = ("value", "children")

    def __init__(self, value: str = "") -> None:
        self.value = value
        self.children: dict[str, Node] = {}


def normalise(path: str) -> str:
    """The absolute form of ``path``; raises XenstoreError EINVAL for a malformed one."""
    if not isinstance(path, str) or not path:
        raise XenstoreError("EINVAL", f"invalid path {path!r}: it must be a non-empty string")
    if not path.startswith("/"):
        path = f"{HOME}/{path}"
    if len(path) > MAX_PATH or _VALID_PATH.fullmatch(path) is None:
        raise XenstoreError(
            "EINVAL",
            f"invalid path {path!r}: use /-separated names of letters, digits, '-', '_' "
            "and '@', with no empty or trailing component",
        )
    return path


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


class Xenstore:
    """Every host's tree, kept in step with the domains the database says are running."""

    def __init__(self, db: Any) -> None:
        """``db`` is the pool's database, or a callable that returns the current one (a
        simulator restart replaces the database; the trees then follow the new one)."""
        self._db = db if callable(db) else (lambda: db)
        self._roots: dict[str, Node] = {}
        self._domains: dict[str, dict[int, str]] = {}  # host -> domid -> VM ref
        # Called as watch(host, path) after each write: what a guest's xenstore watch sees.
        self.watches: list[Callable[[str, str], None]] = []

    @property
    def db(self) -> Any:
        return self._db()

    # -- the trees ------------------------------------------------------------------------

    def root(self, host: str) -> Node:
        """The root of ``host``'s tree, brought in step with its running domains first."""
        self.db.get("host", host)  # HANDLE_INVALID for a host that does not exist
        root = self._roots.get(host)
        if root is None:
            root = self._roots[host] = Node()
            self._make(root, "/local/domain")
            self._make(root, "/vm")
        self._sync(host, root)
        return root

    def _running_domains(self, host: str) -> dict[int, str]:
        domains = {}
        for vm in self.db.get("host", host)["resident_VMs"]:
            record = self.db.all("VM").get(vm)
            if record and record["power_state"] in _RUNNING and int(record["domid"]) >= 0:
                domains[int(record["domid"])] = vm
        return domains

    def _sync(self, host: str, root: Node) -> None:
        known = self._domains.setdefault(host, {})
        running = self._running_domains(host)
        for domid, vm in list(known.items()):
            if running.get(domid) != vm:
                self._forget_domain(root, domid, vm)
                del known[domid]
        for domid, vm in running.items():
            if domid not in known:
                self._introduce_domain(root, domid, vm)
                known[domid] = vm

    def _introduce_domain(self, root: Node, domid: int, vm: str) -> None:
        record = self.db.get("VM", vm)
        home = f"/local/domain/{domid}"
        uuid = record["uuid"]
        control_domain = record["is_control_domain"]
        entries = {
            "name": "Domain-0" if control_domain else record["name_label"],
            "domid": str(domid),
            "vm": f"/vm/{uuid}",
            "memory/static-max": str(int(record["memory_static_max"]) // KiB),
            "memory/target": str(int(record["memory_dynamic_max"]) // KiB),
        }
        for path, value in entries.items():
            self._make(root, f"{home}/{path}").value = value
        for directory in ("data", "control", "attr", "vm-data"):
            self._make(root, f"{home}/{directory}")
        if not control_domain:
            for key, value in record["platform"].items():
                self._store_quietly(root, f"{home}/platform/{key}", value)
            for key, value in record["xenstore_data"].items():
                if key.startswith("vm-data"):  # XAPI passes on only these keys
                    self._store_quietly(root, f"{home}/{key}", value)
        self._make(root, f"/vm/{uuid}/uuid").value = uuid
        self._make(root, f"/vm/{uuid}/name").value = entries["name"]

    def _store_quietly(self, root: Node, path: str, value: str) -> None:
        """Copy a key from the VM record, skipping one that is no valid xenstore path."""
        try:
            self._make(root, normalise(path)).value = value
        except XenstoreError:
            LOG.debug("not copied into xenstore: %r", path)

    def _forget_domain(self, root: Node, domid: int, vm: str) -> None:
        self._remove(root, f"/local/domain/{domid}")
        record = self.db.all("VM").get(vm)
        if record is not None:
            self._remove(root, f"/vm/{record['uuid']}")

    @staticmethod
    def _make(root: Node, path: str) -> Node:
        node = root
        for part in _parts(path):
            node = node.children.setdefault(part, Node())
        return node

    @staticmethod
    def _find(root: Node, path: str) -> Node | None:
        node: Node | None = root
        for part in _parts(path):
            node = node.children.get(part) if node is not None else None
        return node

    @staticmethod
    def _remove(root: Node, path: str) -> bool:
        parts = _parts(path)
        parent = Xenstore._find(root, "/" + "/".join(parts[:-1]))
        if parent is None or not parts or parts[-1] not in parent.children:
            return False
        del parent.children[parts[-1]]
        return True

    # -- operations (what a dom0 tool may do) ---------------------------------------------

    def read(self, host: str, path: str) -> str:
        """The value at ``path``; raises XenstoreError ENOENT if there is no such node."""
        path = normalise(path)
        node = self._find(self.root(host), path)
        if node is None:
            raise XenstoreError("ENOENT", f"no such node {path}")
        return node.value

    def write(self, host: str, path: str, value: str) -> None:
        """Set the value at ``path``, making missing parents with empty values."""
        path = normalise(path)
        if path == "/":
            raise XenstoreError("EINVAL", "the root node has no value to write")
        if not isinstance(value, str):
            raise XenstoreError("EINVAL", f"the value of {path} must be a string")
        self._make(self.root(host), path).value = value
        for watch in list(self.watches):
            try:
                watch(host, path)
            except Exception:  # noqa: BLE001 - a guest's failure is not the writer's
                LOG.exception("a xenstore watch failed on %s", path)

    def directory(self, host: str, path: str) -> list[str]:
        """The names of the children of ``path``; raises ENOENT if there is no such node."""
        path = normalise(path)
        node = self._find(self.root(host), path)
        if node is None:
            raise XenstoreError("ENOENT", f"no such node {path}")
        return list(node.children)

    def walk(self, host: str, path: str) -> list[tuple[int, str, str]]:
        """(depth, name, value) of every node below ``path``, parents before their children."""
        path = normalise(path)
        node = self._find(self.root(host), path)
        if node is None:
            raise XenstoreError("ENOENT", f"no such node {path}")
        out: list[tuple[int, str, str]] = []
        stack = [(0, name, child) for name, child in reversed(node.children.items())]
        while stack:
            depth, name, child = stack.pop()
            out.append((depth, name, child.value))
            stack.extend(
                (depth + 1, f"{name}/{sub}", grandchild)
                for sub, grandchild in reversed(child.children.items())
            )
        return out

    def exists(self, host: str, path: str) -> bool:
        return self._find(self.root(host), normalise(path)) is not None

    def rm(self, host: str, path: str, parents: bool = False) -> None:
        """Remove ``path`` and everything below it.

        As xenstored does, removing a missing node whose parent exists succeeds; with
        ``parents``, parents left with no value and no children go too.
        """
        path = normalise(path)
        if path == "/":
            raise XenstoreError("EINVAL", "the root node cannot be removed")
        root = self.root(host)
        if not self._remove(root, path):
            if self._find(root, path.rsplit("/", 1)[0] or "/") is None:
                raise XenstoreError("ENOENT", f"no such node {path}")
            return
        parts = _parts(path)[:-1]
        while parents and parts:
            node = self._find(root, "/" + "/".join(parts))
            if node is None or node.children or node.value:
                break
            self._remove(root, "/" + "/".join(parts))
            parts.pop()


# -- the socket dom0 commands use --------------------------------------------------------------

_MAX_REQUEST = 1 << 20  # bytes in one request line


class XenstoreServer:
    """Serves :class:`Xenstore` to dom0 commands, one JSON request and reply per line."""

    def __init__(self, xenstore: Xenstore, path: str) -> None:
        self.xenstore = xenstore
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path, limit=_MAX_REQUEST)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, ConnectionError):  # a line over the limit, or a reset
                    break
                if not line:
                    break
                writer.write(json.dumps(self.answer(line)).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    def answer(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise XenstoreError("EINVAL", "a request must be a JSON object")
            return {"ok": self._run(request)}
        except XenstoreError as exc:
            return {"error": exc.code, "message": exc.message}
        except ApiError as exc:
            return {"error": "EINVAL", "message": f"no such host: {exc.description}"}
        except ValueError as exc:
            return {"error": "EINVAL", "message": f"a request must be one line of JSON: {exc}"}

    def _run(self, request: dict[str, Any]) -> Any:
        op, path = request.get("op"), request.get("path")
        host = self._host(request.get("host"))
        store = self.xenstore
        if op == "read":
            return store.read(host, path)
        if op == "write":
            return store.write(host, path, request.get("value"))
        if op == "directory":
            return store.directory(host, path)
        if op == "walk":
            return store.walk(host, path)
        if op == "exists":
            return store.exists(host, path)
        if op == "rm":
            return store.rm(host, path, bool(request.get("parents")))
        raise XenstoreError("EINVAL", f"unknown operation {op!r}")

    def _host(self, uuid: Any) -> str:
        """The host ref of ``uuid``; with no uuid, the master (the socket's own host)."""
        db = self.xenstore.db
        if not uuid:
            pool = next(iter(db.all("pool").values()))
            return pool["master"]
        if not isinstance(uuid, str):
            raise XenstoreError("EINVAL", "host must be a host uuid")
        try:
            return db.by_uuid_ref("host", uuid)
        except ApiError:
            raise XenstoreError("EINVAL", f"no host has uuid {uuid}") from None
