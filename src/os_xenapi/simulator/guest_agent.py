"""The guest agent (nova-agent) of every running guest: it answers what dom0 asks over xenstore.

dom0's agent plugin writes ``{"name": command, "value": ...}`` at
``/local/domain/<domid>/data/host/<id>``; the agent, watching ``data/host``, removes the request
and writes ``{"returncode": "<code>", "message": "..."}`` at ``data/guest/<id>`` (nova-agent's
``xscomm``). Here the agent answers from inside the request's write (a xenstore watch, see
:attr:`.xenstore.Xenstore.watches`), so the plugin finds the answer on its first read. Only a
Running guest answers; dom0 runs no agent.

Commands, answered as nova-agent answers them: ``version`` ("0", the agent's version),
``features`` ("0", the commands it knows, comma-separated), ``keyinit`` ("D0", its
Diffie-Hellman public key; :mod:`.agent_keys`), ``password`` ("0" once the password, encrypted
with the key from keyinit, is read; "500" with the agent's message otherwise), ``resetnetwork``
(reads ``vm-data/networking``), ``file_inject`` and the older ``injectfile`` (the file is kept in
the agent's state), ``agentupdate`` ("url,md5sum"; nothing is downloaded). A command the agent
does not list in its features gets "404".

Per VM, a test sets how the agent behaves (:meth:`GuestAgents.configure`, the simulator's
``set_guest_agent`` and ``POST /_simulator/vms/<vm>/agent``): ``answer`` (the default),
``silent`` (requests stay unanswered: the plugin times out, Nova sees ``TIMEOUT:``) or
``reboot`` (the next request reboots the guest instead of being answered: the plugin sees the
domain go and reports the reboot; the agent of the new domain answers again). What the agent
was asked and what it did (the password it set, the files written, the updates asked for) is
in :meth:`GuestAgents.view`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from .agent_keys import KeyExchange, PasswordError, decrypt_password
from .errors import ApiError
from .xenstore import Xenstore, XenstoreError

LOG = logging.getLogger(__name__)
MODES = ("answer", "silent", "reboot")
DEFAULT_VERSION = "1.39.1"
DEFAULT_FEATURES = ("version", "features", "keyinit", "password", "resetnetwork", "file_inject",
                    "agentupdate")
MAX_REQUESTS = 100  # requests kept in an agent's log, the latest
_REQUEST = re.compile(r"/local/domain/([0-9]+)/data/host/([^/]+)")
_COMMAND = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass
class GuestAgentView:
    """One VM's agent: how it behaves and what it has been asked and done (a copy)."""

    vm: str
    mode: str = "answer"
    version: str = DEFAULT_VERSION
    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    requests: list[dict[str, Any]] = field(default_factory=list)  # {"name", "value"}, oldest first
    password: str | None = None  # the administrator password last set
    key_derivation: str | None = None  # how that password's key was made: "md5" or "sha256"
    files: dict[str, bytes] = field(default_factory=dict)  # path -> contents, injected files
    network_resets: int = 0
    networking: dict[str, str] = field(default_factory=dict)  # vm-data/networking at the last reset
    updates: list[dict[str, str]] = field(default_factory=list)  # {"url", "md5sum"}

    def to_json(self) -> dict[str, Any]:
        """The view as JSON values: file contents in base64."""
        out = dict(self.__dict__)
        out["files"] = {path: base64.b64encode(data).decode("ascii")
                        for path, data in self.files.items()}
        return copy.deepcopy(out)


class _Agent(GuestAgentView):
    """An agent's live state: the view plus the key exchange in progress."""

    keys: KeyExchange | None = None
    secret: str | None = None
    secret_domid: int = -1


class GuestAgents:
    """The agents of one pool's guests, answering through the pool's simulated xenstore."""

    def __init__(self, xenstore: Xenstore) -> None:
        self.xenstore = xenstore
        self._agents: dict[str, _Agent] = {}
        xenstore.watches.append(self._on_write)

    @property
    def db(self) -> Any:
        return self.xenstore.db  # the pool's current database, as the guests' xenstore sees it

    # -- what tests see and set ----------------------------------------------------------------

    def resolve(self, vm: str) -> str:
        """The ref of a guest given by ref or uuid; LookupError if there is none, ValueError
        for the control domain or a template, which run no agent."""
        if not isinstance(vm, str):
            raise LookupError(f"no VM {vm!r}: give its ref or its uuid")
        ref = vm
        if not self.db.exists("VM", ref):
            try:
                ref = self.db.by_uuid_ref("VM", vm)
            except ApiError:
                raise LookupError(f"no VM {vm!r}: give its ref or its uuid") from None
        record = self.db.get("VM", ref)
        if record["is_control_domain"] or record["is_a_template"]:
            raise ValueError(f"VM {vm!r} is the control domain or a template: it runs no agent")
        return ref

    def _agent(self, ref: str) -> _Agent:
        agent = self._agents.get(ref)
        if agent is None:
            tables = self.db.all("VM")
            for gone in [vm for vm in self._agents if vm not in tables]:
                del self._agents[gone]  # the agents of destroyed VMs go with them
            agent = self._agents[ref] = _Agent(vm=ref)
        return agent

    def view(self, vm: str) -> GuestAgentView:
        """A copy of the agent of ``vm`` (ref or uuid)."""
        agent = self._agent(self.resolve(vm))
        return GuestAgentView(**copy.deepcopy({name: getattr(agent, name)
                                               for name in GuestAgentView.__dataclass_fields__}))

    def configure(self, vm: str, *, mode: str | None = None, version: str | None = None,
                  features: list[str] | None = None) -> GuestAgentView:
        """Set how the agent of ``vm`` behaves; options left None stay. ValueError names a bad
        option."""
        ref = self.resolve(vm)
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if version is not None and (not isinstance(version, str) or not version
                                    or len(version) > 64):
            raise ValueError(f"version must be a text of 1 to 64 characters, not {version!r}")
        if features is not None and (not isinstance(features, list | tuple) or not all(
                isinstance(name, str) and _COMMAND.fullmatch(name) for name in features)):
            raise ValueError(f"features must be a list of command names, not {features!r}")
        agent = self._agent(ref)
        agent.mode = mode if mode is not None else agent.mode
        agent.version = version if version is not None else agent.version
        agent.features = list(features) if features is not None else agent.features
        return self.view(ref)

    # -- the watch ---------------------------------------------------------------------------------

    def _guest(self, host: str, domid: int) -> str | None:
        """The Running guest whose domain ``domid`` is on ``host``, if any."""
        for vm in self.db.get("host", host)["resident_VMs"]:
            record = self.db.all("VM").get(vm)
            if record and int(record["domid"]) == domid and record["power_state"] == "Running" \
                    and not record["is_control_domain"]:
                return vm
        return None

    def _on_write(self, host: str, path: str) -> None:
        match = _REQUEST.fullmatch(path)
        if match is None:
            return
        domid, request_id = int(match.group(1)), match.group(2)
        vm = self._guest(host, domid)
        if vm is None:
            return
        agent = self._agent(vm)
        if agent.mode == "silent":
            return
        if agent.mode == "reboot":
            agent.mode = "answer"
            self._reboot(vm, agent)
            return
        home = f"/local/domain/{domid}"
        try:
            text = self.xenstore.read(host, path)
            self.xenstore.rm(host, path)
        except XenstoreError:  # gone already: someone else took it
            return
        code, message = self._run(agent, host, home, domid, text)
        self.xenstore.write(host, f"{home}/data/guest/{request_id}",
                            json.dumps({"returncode": code, "message": message}))

    def _reboot(self, vm: str, agent: _Agent) -> None:
        """The guest reboots itself: its domain goes, a new one (new domid) comes up."""
        from .ops.vm_lifecycle import restart_domain  # the ops import this module's users

        agent.keys, agent.secret = None, None
        restart_domain(self.db, vm)

    # -- the commands ------------------------------------------------------------------------------

    def _run(self, agent: _Agent, host: str, home: str, domid: int,
             text: str) -> tuple[str, str]:
        try:
            request = json.loads(text)
        except ValueError:
            return "500", "the request is not JSON"
        if not isinstance(request, dict) or not isinstance(request.get("name"), str):
            return "500", 'the request has no command "name"'
        name, value = request["name"], request.get("value", "")
        agent.requests = [*agent.requests, {"name": name, "value": value}][-MAX_REQUESTS:]
        if name not in agent.features:
            return "404", f"No such agent command '{name[:64]}'"
        command = _COMMANDS.get(name)
        if command is None:
            return "0", ""  # listed by a test, and nothing to do
        return command(self, agent, host, home, domid, value)

    def _version(self, agent: _Agent, host: str, home: str, domid: int,
                 value: Any) -> tuple[str, str]:
        return "0", agent.version

    def _features(self, agent: _Agent, host: str, home: str, domid: int,
                  value: Any) -> tuple[str, str]:
        return "0", ",".join(agent.features)

    def _keyinit(self, agent: _Agent, host: str, home: str, domid: int,
                 value: Any) -> tuple[str, str]:
        try:
            remote = int(str(value).strip().strip('"'))
            keys = KeyExchange()
            secret = keys.secret_with(remote)
        except ValueError as exc:
            return "500", f"Invalid public key: {exc}"
        agent.keys, agent.secret, agent.secret_domid = keys, secret, domid
        return "D0", str(keys.public)

    def _password(self, agent: _Agent, host: str, home: str, domid: int,
                  value: Any) -> tuple[str, str]:
        if agent.secret is None or agent.secret_domid != domid:
            return "500", "Password without key exchange"
        try:
            password, derivation = decrypt_password(agent.secret, str(value))
        except PasswordError as exc:
            return "500", str(exc)
        agent.password, agent.key_derivation = password, derivation
        agent.keys, agent.secret = None, None  # the agent wipes the key once used
        return "0", ""

    def _resetnetwork(self, agent: _Agent, host: str, home: str, domid: int,
                      value: Any) -> tuple[str, str]:
        networking = {}
        try:
            for depth, name, text in self.xenstore.walk(host, f"{home}/vm-data/networking"):
                if depth == 0:
                    networking[name] = text
        except XenstoreError:
            pass  # no networking configured: the agent keeps the network as it is
        agent.networking = networking
        agent.network_resets += 1
        return "0", ""

    def _file_inject(self, agent: _Agent, host: str, home: str, domid: int,
                     value: Any) -> tuple[str, str]:
        if not isinstance(value, dict):
            return "500", "file_inject takes {\"b64_path\": ..., \"b64_file\": ...}"
        try:
            path = base64.b64decode(str(value.get("b64_path", "")), validate=True)
            contents = base64.b64decode(str(value.get("b64_file", "")), validate=True)
        except (binascii.Error, ValueError):
            return "500", "Error doing base64 decoding of data"
        return self._write_file(agent, path, contents)

    def _injectfile(self, agent: _Agent, host: str, home: str, domid: int,
                    value: Any) -> tuple[str, str]:
        try:
            joined = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            return "500", "Error doing base64 decoding of data"
        if b"," not in joined:
            return "500", "injectfile takes base64 of \"path,contents\""
        path, contents = joined.split(b",", 1)
        return self._write_file(agent, path, contents)

    @staticmethod
    def _write_file(agent: _Agent, path: bytes, contents: bytes) -> tuple[str, str]:
        try:
            name = path.decode("utf-8")
        except UnicodeDecodeError:
            return "500", "the file path is not UTF-8"
        if not name.startswith("/"):
            return "500", "the file path must be absolute"
        agent.files = {**agent.files, name: contents}
        return "0", ""

    def _agentupdate(self, agent: _Agent, host: str, home: str, domid: int,
                     value: Any) -> tuple[str, str]:
        url, comma, md5sum = str(value).partition(",")
        if not comma or not url or not md5sum:
            return "500", "agentupdate takes \"url,md5sum\""
        agent.updates = [*agent.updates, {"url": url, "md5sum": md5sum}]
        return "0", ""


_COMMANDS = {
    "version": GuestAgents._version,
    "features": GuestAgents._features,
    "keyinit": GuestAgents._keyinit,
    "password": GuestAgents._password,
    "resetnetwork": GuestAgents._resetnetwork,
    "file_inject": GuestAgents._file_inject,
    "injectfile": GuestAgents._injectfile,
    "agentupdate": GuestAgents._agentupdate,
}
