"""``session.VM.get_record(ref)``: one helper per XAPI class on a XenAPISession, as in 0.3.4.

Each helper turns ``session.<Class>.<message>(*args)`` into
``session.call_xenapi("<Class>.<message>", *args)`` (a ``timeout=`` keyword passes through).
The 25 names are os-xenapi 0.3.4's. ``VBD.plug(vbd, vm)`` and ``VBD.unplug(vbd, vm)`` take the
VM as a second argument, which is not sent: it names a per-VM lock so that one process plugs or
unplugs one VBD of a VM at a time (0.3.4's workaround for a XenServer 6.1/6.2 bug, kept because
callers rely on the signature). The locks are ordinary threading locks, shared by every session
of the process, and dropped when no thread holds or waits for them.

:func:`synchronized` is 0.3.4's decorator of that name (oslo.concurrency's, with the prefix
``os-xenapi-``): ``@synchronized("vbd-" + vm_ref)`` takes the very lock ``VBD.plug`` takes.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

LOCK_PREFIX = "os-xenapi-"
_F = TypeVar("_F", bound=Callable[..., Any])


class _Caller(Protocol):
    def call_xenapi(self, method: str, *args: Any, timeout: Any = None) -> Any: ...


class XenAPISessionObject:
    """The messages of one XAPI class, called through ``session``."""

    def __init__(self, session: _Caller, name: str) -> None:
        self.session = session
        self.name = name

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__") and method.endswith("__"):
            raise AttributeError(method)
        return functools.partial(self.session.call_xenapi, f"{self.name}.{method}")

    def __repr__(self) -> str:
        return f"<XAPI class {self.name}>"


class _Lock:
    """A lock that can be weakly referenced (so the registry forgets unused ones)."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_LOCKS: weakref.WeakValueDictionary[str, _Lock] = weakref.WeakValueDictionary()
_REGISTRY = threading.Lock()


def _named_lock(name: str) -> _Lock:
    """The process-wide lock called ``name`` (made on first use, forgotten when unused)."""
    with _REGISTRY:
        lock = _LOCKS.get(name)
        if lock is None:
            lock = _Lock()
            _LOCKS[name] = lock
        return lock


def _vm_lock(vm_ref: str) -> _Lock:
    """The process-wide plug/unplug lock of ``vm_ref``, ``os-xenapi-vbd-<vm>`` as in 0.3.4."""
    return _named_lock(f"{LOCK_PREFIX}vbd-{vm_ref}")


def synchronized(name: str, *, external: bool = False,
                 lock_path: str | None = None) -> Callable[[_F], _F]:
    """A decorator: the function runs holding the process-wide lock ``os-xenapi-<name>``
    (0.3.4's ``objects.synchronized``, oslo.concurrency's options by keyword).

    With ``external=True`` it also holds an exclusive ``flock`` on the file
    ``<lock_path>/os-xenapi-<name>``, so other processes using that file wait too. Raises
    ValueError for an external lock without ``lock_path`` or a name that is not a file name.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a lock name is a non-empty str, not {name!r}")
    full_name = LOCK_PREFIX + name
    lock_file = None
    if external:
        if not lock_path:
            raise ValueError(f"synchronized({name!r}, external=True) needs lock_path, the "
                             "directory of the lock files")
        if "/" in name or "\0" in name:
            raise ValueError(f"an external lock's name becomes a file name: {name!r} is not one")
        lock_file = os.path.join(lock_path, full_name)

    def decorate(function: _F) -> _F:
        @functools.wraps(function)
        def locked(*args: Any, **kwargs: Any) -> Any:
            lock = _named_lock(full_name)
            with lock.lock:
                if lock_file is None:
                    return function(*args, **kwargs)
                fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    return function(*args, **kwargs)
                finally:
                    os.close(fd)  # releases the flock; the file stays, as lock files must

        return locked  # type: ignore[return-value]

    return decorate


class VM(XenAPISessionObject):
    def __init__(self, session: _Caller) -> None:
        super().__init__(session, "VM")


class VBD(XenAPISessionObject):
    """VBD messages; ``plug`` and ``unplug`` take the VM too and hold its lock."""

    def __init__(self, session: _Caller) -> None:
        super().__init__(session, "VBD")

    def plug(self, vbd_ref: str, vm_ref: str) -> None:
        """``VBD.plug(vbd_ref)``, one at a time per VM in this process."""
        lock = _vm_lock(vm_ref)
        with lock.lock:
            return self.session.call_xenapi("VBD.plug", vbd_ref)

    def unplug(self, vbd_ref: str, vm_ref: str) -> None:
        """``VBD.unplug(vbd_ref)``, one at a time per VM in this process."""
        lock = _vm_lock(vm_ref)
        with lock.lock:
            return self.session.call_xenapi("VBD.unplug", vbd_ref)


def _helper(class_name: str, xapi_name: str) -> type[XenAPISessionObject]:
    def __init__(self: XenAPISessionObject, session: _Caller) -> None:
        XenAPISessionObject.__init__(self, session, xapi_name)

    return type(class_name, (XenAPISessionObject,), {"__init__": __init__,
                                                      "__doc__": f"{xapi_name} messages."})


VDI = _helper("VDI", "VDI")
VIF = _helper("VIF", "VIF")
SR = _helper("SR", "SR")
PBD = _helper("PBD", "PBD")
PIF = _helper("PIF", "PIF")
VLAN = _helper("VLAN", "VLAN")
Host = _helper("Host", "host")
Network = _helper("Network", "network")
Pool = _helper("Pool", "pool")
Task = _helper("Task", "task")
GPU_group = _helper("GPU_group", "GPU_group")
PGPU = _helper("PGPU", "PGPU")
VGPU = _helper("VGPU", "VGPU")
VGPU_type = _helper("VGPU_type", "VGPU_type")
Console = _helper("Console", "console")
Host_metrics = _helper("Host_metrics", "host_metrics")
PCI = _helper("PCI", "PCI")
PIF_metrics = _helper("PIF_metrics", "PIF_metrics")
Pool_update = _helper("Pool_update", "pool_update")
Role = _helper("Role", "role")
SDN_controller = _helper("SDN_controller", "SDN_controller")
SM = _helper("SM", "SM")
Secret = _helper("Secret", "secret")

# attribute on the session -> helper class, the 25 of 0.3.4's apply_session_helpers
HELPERS: dict[str, type[XenAPISessionObject]] = {
    "VM": VM, "VBD": VBD, "VDI": VDI, "VIF": VIF, "SR": SR, "PBD": PBD, "PIF": PIF,
    "VLAN": VLAN, "host": Host, "network": Network, "pool": Pool, "task": Task,
    "GPU_group": GPU_group, "PGPU": PGPU, "VGPU": VGPU, "VGPU_type": VGPU_type,
    "console": Console, "host_metrics": Host_metrics, "PCI": PCI, "PIF_metrics": PIF_metrics,
    "pool_update": Pool_update, "role": Role, "SDN_controller": SDN_controller, "SM": SM,
    "secret": Secret,
}


def apply_session_helpers(session: Any) -> None:
    """Put the 25 helpers on ``session``: ``session.VM``, ``session.host``, ``session.SR``..."""
    for attribute, helper in HELPERS.items():
        setattr(session, attribute, helper(session))
