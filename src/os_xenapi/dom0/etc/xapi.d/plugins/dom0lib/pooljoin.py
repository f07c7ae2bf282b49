"""Joining another host to this host's pool for xenhost.host_join, with XAPI calls only.

Nova's pool code asks the pool master to add a host. The plugin logs in to the joining host
at its URL, shuts down the nova-compute VM running there, has that host join this pool
(pool.join, or pool.join_force) and then starts the compute VM again whatever happened:
through the joining host's own session while it still answers (the join failed), else
through this host's session once the VM shows up in the pool (a successful join restarts the
joining host's XAPI). pool.join is a call on the host that joins, which is why the plugin
needs that host's session as well as its own.

The passwords go to XAPI in the calls that need them and nowhere else: no command runs, no
log line names them, and every error detail is scrubbed of them before it leaves.
"""

import http.client
import time
import xmlrpc.client

import XenAPI

from dom0lib.errors import CLEANUP_FAILED, RETRYABLE, PluginError
from dom0lib.logs import get_logger

ORIGINATOR = "os-xenapi host_join"
HIDDEN = "(hidden)"
# How long the joined host may take to come back before its compute VM is given up on:
# os-xenapi 0.3.4 tried for 24 pauses of 10 s.
RESUME_SECONDS = 240.0
RESUME_PAUSE = 10.0
# Replaced by unit tests, which run the resume loop on a fake clock.
clock = time.monotonic
sleep = time.sleep
# What a connection to a host that is restarting (or unreachable) raises.
NETWORK_ERRORS = (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError)
LOG = get_logger("xenhost")


def scrub(details: list, secrets: tuple) -> list:
    """details as strings with every secret replaced by "(hidden)"."""
    cleaned = []
    for detail in details:
        text = str(detail)
        for secret in secrets:
            if secret:
                text = text.replace(secret, HIDDEN)
        cleaned.append(text)
    return cleaned


def _unreachable(what: str, exc: BaseException) -> PluginError:
    # Only the class: a transport's message may quote the request.
    return PluginError(RETRYABLE, what, "cannot reach it (" + type(exc).__name__ + ")")


def _start_remotely(remote, compute) -> bool:
    """Start the compute VM through the joining host's session; False if that session or
    host no longer answers (it is restarting into the pool) or refuses."""
    try:
        remote.xenapi.VM.start(compute, False, True)
    except XenAPI.Failure as exc:
        LOG.info("host_join: the joining host did not start its compute VM (%s); trying "
                 "through the pool", exc.details[0] if exc.details else "?")
        return False
    except NETWORK_ERRORS as exc:
        LOG.info("host_join: the joining host does not answer (%s); trying through the pool",
                 type(exc).__name__)
        return False
    return True


def _start_through_pool(local, compute_uuid: str) -> None:
    """Start the compute VM through this host's session, retrying until it is known to the
    pool and starts, or RESUME_SECONDS pass. Raises PluginError CLEANUP_FAILED then."""
    deadline = clock() + RESUME_SECONDS
    last = "not found"
    while True:
        try:
            vm = local.xenapi.VM.get_by_uuid(compute_uuid)
            if local.xenapi.VM.get_power_state(vm) == "Running":
                return
            local.xenapi.VM.start(vm, False, True)
            return
        except XenAPI.Failure as exc:
            last = str(exc.details[0]) if exc.details else "XAPI error"
        if clock() + RESUME_PAUSE > deadline:
            raise PluginError(CLEANUP_FAILED, "compute VM", compute_uuid,
                              f"not started again after the pool join ({last}); start it "
                              "by hand")
        sleep(RESUME_PAUSE)


def _resume(local, remote, compute, compute_uuid: str) -> None:
    if not _start_remotely(remote, compute):
        _start_through_pool(local, compute_uuid)


def _logout(remote) -> None:
    try:
        remote.xenapi.session.logout()
    except (XenAPI.Failure,) + NETWORK_ERRORS:
        pass  # the joined host's XAPI restarted: that session is gone anyway


def join(local, url: str, user: str, password: str, compute_uuid: str, master_addr: str,
         master_user: str, master_pass: str, force: bool) -> None:
    """Make the host at url join this pool and start its compute VM again; return None.

    XAPI's errors pass through scrubbed of both passwords (SESSION_AUTHENTICATION_FAILED,
    UUID_INVALID, POOL_JOINING_HOST_*...). Raises PluginError RETRYABLE if the joining host
    cannot be reached before the join, CLEANUP_FAILED if its compute VM cannot be started
    again.
    """
    secrets = (password, master_pass)
    try:
        remote = XenAPI.Session(url)
        remote.xenapi.login_with_password(user, password, "1.0", ORIGINATOR)
        compute = remote.xenapi.VM.get_by_uuid(compute_uuid)
        LOG.info("host_join: shutting down the compute VM of the joining host")
        remote.xenapi.VM.clean_shutdown(compute)
    except XenAPI.Failure as exc:
        raise XenAPI.Failure(scrub(exc.details, secrets)) from None
    except NETWORK_ERRORS as exc:
        raise _unreachable("joining host", exc) from None
    try:
        LOG.info("host_join: the joining host joins this pool%s", " (forced)" if force else "")
        if force:
            remote.xenapi.pool.join_force(master_addr, master_user, master_pass)
        else:
            remote.xenapi.pool.join(master_addr, master_user, master_pass)
    except XenAPI.Failure as exc:
        failure = XenAPI.Failure(scrub(exc.details, secrets))
    except NETWORK_ERRORS as exc:
        failure = _unreachable("joining host", exc)
    else:
        failure = None
    if failure is not None:
        LOG.warning("host_join: the join failed (%s); starting the compute VM again",
                    failure.details[0] if isinstance(failure, XenAPI.Failure) else failure.code)
    try:
        _resume(local, remote, compute, compute_uuid)
    except XenAPI.Failure as exc:
        raise XenAPI.Failure(scrub(exc.details, secrets)) from None
    finally:
        _logout(remote)
    if failure is not None:
        raise failure
    LOG.info("host_join: the host joined the pool")
