"""Python calls into dom0's ``agent`` plugin, which talks to the guest agent of a running VM
through xenstore requests and answers (os-xenapi 0.3.4's ``host_agent`` names and signatures).

``uuid`` is the request id the agent echoes. Each function returns what 0.3.4 returned: the
agent's answer as JSON text (``'{"returncode": "0", "message": "..."}'``), which callers
``json.loads``; the plugin decodes it and this module encodes it again, so the text is equal as
JSON, not necessarily byte for byte. No answer within ``timeout`` seconds raises
``Dom0PluginError`` with code ``OS_XENAPI_TIMEOUT``; a guest that rebooted meanwhile,
``OS_XENAPI_REBOOT_DETECTED``. Decoded answers are the compute layer's business.
"""

from __future__ import annotations

import json
from typing import Any

PLUGIN = "agent"


def _call(session: Any, fn: str, uuid: str, dom_id: int | str, timeout: int | str,
          **extra: Any) -> str:
    answer = session.call_plugin_serialized(PLUGIN, fn, id=uuid, dom_id=dom_id, timeout=timeout,
                                            **extra)
    return json.dumps(answer)  # 0.3.4 returned the agent's JSON text


def version(session: Any, uuid: str, dom_id: int | str, timeout: int | str) -> str:
    """agent.version: the agent's version answer, as JSON text."""
    return _call(session, "version", uuid, dom_id, timeout)


def key_init(session: Any, uuid: str, dom_id: int | str, timeout: int | str,
             pub: str = "") -> str:
    """agent.key_init: start the Diffie-Hellman exchange with our public key ``pub``; the
    agent's answer (its public key in ``message``) as JSON text."""
    return _call(session, "key_init", uuid, dom_id, timeout, pub=pub)


def agent_update(session: Any, uuid: str, dom_id: int | str, timeout: int | str,
                 url: str = "", md5sum: str = "") -> str:
    """agent.agentupdate: have the agent update itself from ``url`` (checked by ``md5sum``);
    the answer as JSON text."""
    return _call(session, "agentupdate", uuid, dom_id, timeout, url=url, md5sum=md5sum)


def password(session: Any, uuid: str, dom_id: int | str, timeout: int | str,
             enc_pass: str = "") -> str:
    """agent.password: set the guest's password, encrypted with the exchanged key; the answer
    as JSON text."""
    return _call(session, "password", uuid, dom_id, timeout, enc_pass=enc_pass)


def inject_file(session: Any, uuid: str, dom_id: int | str, timeout: int | str,
                b64_path: str = "", b64_contents: str = "") -> str:
    """agent.inject_file: write a file (path and contents base64) into the guest; the answer
    as JSON text."""
    return _call(session, "inject_file", uuid, dom_id, timeout, b64_path=b64_path,
                 b64_contents=b64_contents)


def reset_network(session: Any, uuid: str, dom_id: int | str, timeout: int | str) -> str:
    """agent.resetnetwork: have the agent reapply the guest's network configuration; the
    answer as JSON text."""
    return _call(session, "resetnetwork", uuid, dom_id, timeout)
