#!/usr/bin/python3 -B
"""agent: requests to the guest agent (nova-agent and its kin) through xenstore.

A request is the JSON {"name": command, "value": ...} written at
/local/domain/<dom_id>/data/host/<id>; the agent answers at data/guest/<id>, normally with
{"returncode": "0", "message": "..."}. We poll for the answer every half second until the
timeout, checking after each pause that the domain still exists (it vanishes when the VM
reboots). On timeout or reboot the request is withdrawn. Every function returns the
agent's decoded answer; called with os-xenapi 0.3.4's plain arguments, its JSON text.

Failures keep os-xenapi's codes and end, as 0.3.4's did, with the line Nova looks for in
the last detail: "TIMEOUT: ...", "REBOOT: ..." or "NOT IMPLEMENTED: ...".
"""

import base64
import json
import time
import uuid

import dom0lib
import XenAPIPlugin
from dom0lib import xenstore
from dom0lib.errors import BAD_DATA, NOT_SUPPORTED, REBOOT_DETECTED, TIMEOUT, TOO_LARGE, PluginError
from dom0lib.logs import get_logger
from dom0lib.validate import DOM_ID, Base64, Int, Str

DEFAULT_TIMEOUT = 30
POLL_SECONDS = 0.5
# Replaced by unit tests, which run the poll loop on a fake clock.
clock = time.monotonic
sleep = time.sleep

REQUEST_ID = Str(64, r"[A-Za-z0-9_-]+", what="a request id: 1-64 characters of A-Z a-z 0-9 _ -")
AGENT_TIMEOUT = Int(1, 3600)
DH_PUBLIC_KEY = Str(2048, r"[0-9]+", what="a Diffie-Hellman public key in decimal digits")
# openssl's base64 output, which wraps lines.
ENCRYPTED = Str(3000, r"[A-Za-z0-9+/=\n]+", what="base64 text (newlines allowed)")
URL = Str(1024, r"https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+;=%-]+",
          what="an http or https URL without spaces or commas")
MD5SUM = Str(32, r"[0-9a-fA-F]{32}", what="an MD5 digest in 32 hexadecimal digits")
B64_TEXT = Base64(3000)
LOG = get_logger("agent")


def _discard(path):
    """Remove a request or answer node; a failure is logged, not raised, so it cannot hide
    the outcome the caller needs to see."""
    try:
        xenstore.remove(path)
    except PluginError as exc:
        LOG.warning("could not remove %s: %s", path, exc)


def _answer(dom_id, request_id, timeout):
    """Wait for the agent's answer to request_id and return it decoded."""
    answer_path = xenstore.domain_path(dom_id, "data/guest/" + request_id)
    deadline = clock() + timeout
    rebooted = False
    for _ in range(int(timeout / POLL_SECONDS) + 2):
        text = xenstore.read(answer_path)
        if text is not None:
            _discard(answer_path)
            try:
                return json.loads(text)
            except ValueError:
                raise PluginError(BAD_DATA, "agent answer", "not JSON") from None
        if clock() >= deadline:
            break
        sleep(POLL_SECONDS)
        if not xenstore.exists(xenstore.domain_path(dom_id, "name")):
            rebooted = True
            break
    _discard(xenstore.domain_path(dom_id, "data/host/" + request_id))
    if rebooted:
        raise PluginError(REBOOT_DETECTED, str(dom_id),
                          f"REBOOT: domain {dom_id} is gone: the VM rebooted or stopped")
    raise PluginError(TIMEOUT, "agent answer", str(timeout),
                      f"TIMEOUT: the guest agent did not answer within {timeout} seconds")


def _request(dom_id, request_id, name, value, timeout):
    """Send one request to the agent and return its decoded answer."""
    request_path = xenstore.domain_path(dom_id, "data/host/" + request_id)
    message = json.dumps({"name": name, "value": value})
    if len(request_path) + 1 + len(message) > xenstore.PAYLOAD_MAX:
        raise PluginError(TOO_LARGE, "agent request", f"{xenstore.PAYLOAD_MAX} bytes")
    xenstore.write(request_path, message)
    return _answer(dom_id, request_id, timeout)


def _features(dom_id, timeout):
    """Return the features the agent reports (an empty list if it does not understand)."""
    answer = _request(dom_id, str(uuid.uuid4()), "features", "", timeout)
    if isinstance(answer, dict) and str(answer.get("returncode")) == "0":
        return [part.strip() for part in str(answer.get("message", "")).split(",")]
    return []


@dom0lib.plain()
@dom0lib.takes(id=REQUEST_ID, dom_id=DOM_ID, timeout=AGENT_TIMEOUT)
def version(ctx, id, dom_id, timeout=DEFAULT_TIMEOUT):
    """Ask the agent for its version."""
    return _request(dom_id, id, "version", "agent", timeout)


@dom0lib.plain()
@dom0lib.takes(id=REQUEST_ID, dom_id=DOM_ID, timeout=AGENT_TIMEOUT, pub=DH_PUBLIC_KEY)
def key_init(ctx, id, dom_id, timeout=DEFAULT_TIMEOUT, *, pub):
    """Start the Diffie-Hellman key exchange: send our public key, return the agent's."""
    return _request(dom_id, id, "keyinit", pub, timeout)


@dom0lib.plain()
@dom0lib.takes(id=REQUEST_ID, dom_id=DOM_ID, timeout=AGENT_TIMEOUT, enc_pass=ENCRYPTED)
def password(ctx, id, dom_id, timeout=DEFAULT_TIMEOUT, *, enc_pass):
    """Set the guest's administrator password, encrypted with the key from key_init."""
    return _request(dom_id, id, "password", enc_pass, timeout)


@dom0lib.plain()
@dom0lib.takes(id=REQUEST_ID, dom_id=DOM_ID, timeout=AGENT_TIMEOUT)
def resetnetwork(ctx, id, dom_id, timeout=DEFAULT_TIMEOUT):
    """Ask the agent to reconfigure the guest's network from xenstore's vm-data."""
    return _request(dom_id, id, "resetnetwork", "", timeout)


@dom0lib.plain()
@dom0lib.takes(id=REQUEST_ID, dom_id=DOM_ID, timeout=AGENT_TIMEOUT, b64_path=B64_TEXT,
               b64_contents=B64_TEXT)
def inject_file(ctx, id, dom_id, timeout=DEFAULT_TIMEOUT, *, b64_path, b64_contents):
    """Write a file into the guest: path and contents are base64.

    Asks the agent for its features first: "file_inject" agents get both values separately,
    older "injectfile" agents get base64("path,contents"). Raises OS_XENAPI_NOT_SUPPORTED
    if the agent has neither (injection missing or disabled), OS_XENAPI_TOO_LARGE if the
    request does not fit in one xenstore message.
    """
    features = _features(dom_id, timeout)
    if "file_inject" in features:
        return _request(dom_id, id, "file_inject",
                        {"b64_path": b64_path, "b64_file": b64_contents}, timeout)
    if "injectfile" in features:
        joined = base64.b64decode(b64_path) + b"," + base64.b64decode(b64_contents)
        return _request(dom_id, id, "injectfile", base64.b64encode(joined).decode("ascii"),
                        timeout)
    raise PluginError(NOT_SUPPORTED, "file injection",
                      "the guest agent does not offer file_inject or injectfile",
                      "NOT IMPLEMENTED: the guest agent does not support file injection")


@dom0lib.plain()
@dom0lib.takes(id=REQUEST_ID, dom_id=DOM_ID, timeout=AGENT_TIMEOUT, url=URL, md5sum=MD5SUM)
def agentupdate(ctx, id, dom_id, timeout=DEFAULT_TIMEOUT, *, url, md5sum):
    """Tell the agent to update itself from url, checking the download against md5sum."""
    return _request(dom_id, id, "agentupdate", url + "," + md5sum, timeout)


if __name__ == "__main__":
    XenAPIPlugin.dispatch(dom0lib.register(
        "agent", version, key_init, password, resetnetwork, inject_file, agentupdate))
