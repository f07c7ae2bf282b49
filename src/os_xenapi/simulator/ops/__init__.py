"""Handlers of XAPI's custom messages, one module per class or concern; importing registers them."""

from . import (  # noqa: F401
    data_sources,
    events,
    host_pool,
    message,
    pbd,
    placement,
    plugins,
    session,
    sr,
    storage,
    task,
    vdi,
    vm,
    vm_lifecycle,
)
