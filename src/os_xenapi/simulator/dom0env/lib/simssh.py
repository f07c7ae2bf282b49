"""The simulated dom0's ssh: host keys, known_hosts checks, the simulator's hosts, and the one
remote command a simulated sshd runs (``rsync --server``), for the ``ssh``, ``ssh-keyscan`` and
``rsync`` stand-ins in ``dom0env/bin``.

Nothing here opens a network socket. The "hosts" ssh can reach are the simulator's hosts, found
through its XAPI on the Unix socket ($XAPI_SIM_SOCKET); every other host refuses the connection.
All simulated hosts share one dom0 root (DOM0_ROOT), so they share one ssh host key,
DOM0_ROOT/etc/ssh/ssh_host_ed25519_key.pub (made on first need: a random 32-byte key in the
OpenSSH public key format; there is no private key, since no cryptography happens), and a
"remote" command runs against that same DOM0_ROOT.

Paths follow simpaths' convention: a stand-in's path arguments are real paths under DOM0_ROOT
(relative ones start at DOM0_ROOT), while the paths inside a remote command are dom0 paths
("/images/x"), translated here to DOM0_ROOT + path. Python 3.6, standard library only.
"""

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import struct
import xmlrpc.client

import simpaths
import simtools
import XenAPI

KEY_TYPE = "ssh-ed25519"
KEY_TYPE_NAME = "ED25519"
HOST_KEY = "etc/ssh/ssh_host_ed25519_key.pub"
USER_KNOWN_HOSTS = "root/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = "etc/ssh/ssh_known_hosts"
ROOT_HOME = "/root"
SSH_PORT = 22
CONNECTION_LOG = "var/log/simssh-connections.log"
_MAX_KNOWN_HOSTS = 1 << 20
_MAX_KEY_FILE = 4096
# rsync's receiver flags: one compact group, then "e." and the protocol's capability letters.
# 'D' (devices and specials) is left out on purpose: the receiver, root here, would mknod.
_SERVER_FLAGS = re.compile(r"-[logtprSvz]+(e\.[A-Za-z]*)?")
_TIMEOUT_OPTION = re.compile(r"--timeout=[0-9]{1,6}")
# Characters a remote shell would act on when unquoted (or, for $ and `, inside double quotes).
_SHELL_SPECIAL = set(";&|<>()$`*?[]{}~#!\n\r")


class SshError(Exception):
    """A failure ssh reports: the message (one or more lines for stderr) and the exit status."""

    def __init__(self, message, status=255):
        super().__init__(message)
        self.status = status


# -- the host key --------------------------------------------------------------------------

def _wire_string(data):
    return struct.pack(">I", len(data)) + data


def _valid_blob(blob):
    """Whether blob is an ssh-ed25519 public key in the wire format (type, then 32 bytes)."""
    name = KEY_TYPE.encode()
    return len(blob) == 4 + len(name) + 4 + 32 and blob.startswith(_wire_string(name)) and \
        blob[4 + len(name):4 + len(name) + 4] == struct.pack(">I", 32)


def host_key():
    """The simulated dom0's ssh host key as its base64 blob, made on first need.

    Raises simpaths.Refused if the key file would lie outside DOM0_ROOT or is not a valid key.
    """
    root = simpaths.dom0_root()
    directory = os.path.join(root, os.path.dirname(HOST_KEY))
    path = simpaths.regular_file(os.path.join(root, HOST_KEY), "ssh host key", must_exist=False)
    if not os.path.lexists(path):
        os.makedirs(directory, exist_ok=True)
        simpaths.directory(directory, "ssh host key directory")
        blob = _wire_string(KEY_TYPE.encode()) + _wire_string(os.urandom(32))
        line = f"{KEY_TYPE} {base64.b64encode(blob).decode()} root@simulated-dom0\n"
        temporary = f"{path}.tmp.{os.getpid()}"
        with open(temporary, "x") as stream:
            stream.write(line)
        try:
            os.link(temporary, path)  # the first of two racing makers wins; both then read it
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        path = simpaths.regular_file(path, "ssh host key")
    with open(path, "rb") as stream:
        words = stream.read(_MAX_KEY_FILE).decode("ascii", "replace").split()
    blob = _decode(words[1]) if len(words) >= 2 and words[0] == KEY_TYPE else None
    if blob is None or not _valid_blob(blob):
        raise simpaths.Refused(f"ssh host key {path} is not an {KEY_TYPE} public key")
    return words[1]


def fingerprint(key):
    """OpenSSH's SHA256 fingerprint of a base64 key blob."""
    digest = hashlib.sha256(base64.b64decode(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _decode(text):
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None


# -- known_hosts ---------------------------------------------------------------------------

def lookup_name(host, port=SSH_PORT):
    """The name ssh looks a host up by in known_hosts: "host", or "[host]:port" off port 22."""
    host = host.lower()
    return host if port == SSH_PORT else f"[{host}]:{port}"


def hashed_name(name, salt=None):
    """A hashed known_hosts host field, "|1|salt|HMAC-SHA1(salt, name)", both base64."""
    salt = os.urandom(20) if salt is None else salt
    mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"


def _hash_matches(field, name):
    parts = field.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    salt = _decode(parts[2])
    return salt is not None and hmac.compare_digest(hashed_name(name, salt), field)


def _pattern_matches(pattern, name):
    """OpenSSH's host patterns: * and ? wildcards, no other special characters, no case."""
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                         for c in pattern.lower())
    return re.fullmatch(expression, name) is not None


def hosts_field_matches(field, name):
    """Whether a known_hosts host field (hashed, or a comma list of patterns where "!pattern"
    excludes) names the lookup name."""
    if field.startswith("|"):
        return _hash_matches(field, name)
    matched = False
    for pattern in field.split(","):
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], name):
                return False
        elif pattern and _pattern_matches(pattern, name):
            matched = True
    return matched


def check_known_hosts(path, name, key):
    """Look key up for the lookup name in one known_hosts file.

    Returns ("known", None), ("new", None) when no ed25519 key is listed for the name,
    ("changed", line number of the first other key) or ("revoked", line number). A missing
    file has no entries, as for ssh. Lines of other key types and @cert-authority lines are
    passed over.
    """
    if not os.path.lexists(path):
        return "new", None
    with open(path, "rb") as stream:
        text = stream.read(_MAX_KNOWN_HOSTS).decode("utf-8", "replace")
    wanted = base64.b64decode(key)
    status, where = "new", None
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        marker = words.pop(0) if words[0].startswith("@") else None
        if len(words) < 3 or words[1] != KEY_TYPE or marker == "@cert-authority":
            continue
        if not hosts_field_matches(words[0], name):
            continue
        same = _decode(words[2]) == wanted
        if marker == "@revoked":
            if same:
                return "revoked", number
        elif marker is None:
            if same:
                status, where = "known", None
            elif status == "new":
                status, where = "changed", number
    return status, where


def verify_host_key(host, port, known_hosts):
    """Check the simulated host key of host as ssh does, against the user's known_hosts file
    and then DOM0_ROOT/etc/ssh/ssh_known_hosts; return None when it is known.

    Raises SshError (status 255) with ssh's complaint: no entry, a changed or a revoked key.
    """
    key = host_key()
    name = lookup_name(host, port)
    root = simpaths.dom0_root()
    status, where, offending = "new", None, known_hosts
    for path in (known_hosts, os.path.join(root, GLOBAL_KNOWN_HOSTS)):
        path = simpaths.regular_file(path, "known_hosts file", must_exist=False)
        status, where = check_known_hosts(path, name, key)
        offending = path
        if status != "new":
            break
    if status == "known":
        return None
    if status == "revoked":
        raise SshError("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
                       "@       WARNING: REVOKED HOST KEY DETECTED!               @\n"
                       "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
                       f"The {KEY_TYPE_NAME} host key for {host} is marked as revoked "
                       f"({offending}:{where}).\n"
                       "Host key verification failed.")
    if status == "changed":
        raise SshError(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            f"The {KEY_TYPE_NAME} key sent by the remote host has fingerprint "
            f"{fingerprint(key)}.\n"
            f"Offending {KEY_TYPE_NAME} key in {offending}:{where}\n"
            f"Host key for {host} has changed and you have requested strict checking.\n"
            "Host key verification failed.")
    raise SshError(f"No {KEY_TYPE_NAME} host key is known for {host} and you have requested "
                   "strict checking.\nHost key verification failed.")


# -- the simulator's hosts -----------------------------------------------------------------

class _TimedTransport(XenAPI.UDSTransport):
    """XAPI's Unix socket with a time limit on connecting and on every answer."""

    def __init__(self, path, timeout):
        XenAPI.UDSTransport.__init__(self, path)
        self.timeout = timeout

    def make_connection(self, host):
        if self._connection and self._connection[0] == host:
            return self._connection[1]
        self._connection = host, XenAPI.UDSHTTPConnection(self.socket_path, self.timeout)
        return self._connection[1]


def simulated_hosts(timeout):
    """{address: host uuid} of every host of the simulated pool, asked of the simulator's XAPI.

    Raises SshError if $XAPI_SIM_SOCKET is unset or XAPI cannot be asked.
    """
    socket_path = os.environ.get(XenAPI.LOCAL_SOCKET_ENV, "")
    if not socket_path:
        raise SshError(f"ssh (simulated dom0): {XenAPI.LOCAL_SOCKET_ENV} is not set, so the "
                       "simulated hosts cannot be looked up")
    session = XenAPI.Session("http://_var_lib_xcp_xapi/",
                             transport=_TimedTransport(socket_path, timeout))
    try:
        session.xenapi.login_with_password("root", "", "1.0", "simulated-ssh")
        try:
            records = session.xenapi.host.get_all_records()
        finally:
            session.xenapi.session.logout()
    except (OSError, http.client.HTTPException, xmlrpc.client.Error, XenAPI.Failure) as exc:
        raise SshError("ssh (simulated dom0): cannot ask the simulator's XAPI for its hosts: "
                       f"{exc}") from None
    return {_normal_address(record["address"]): record["uuid"] for record in records.values()}


def _normal_address(host):
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def find_host(host, port, timeout):
    """The uuid of the simulated host at address host; "Connection refused" for any other
    host or port, as from a machine with no sshd, without touching the network."""
    return find_host_in(simulated_hosts(timeout) if port == SSH_PORT else {}, host, port)


def find_host_in(hosts, host, port):
    """find_host with the simulated hosts ({address: uuid}) already looked up."""
    uuid = hosts.get(_normal_address(host)) if port == SSH_PORT else None
    if uuid is None:
        raise SshError(f"ssh: connect to host {host} port {port}: Connection refused")
    return uuid


def log_connection(host, user, command):
    """Append one JSON line per accepted connection to DOM0_ROOT/var/log, for tests."""
    path = os.path.join(simpaths.dom0_root(), CONNECTION_LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    path = simpaths.regular_file(path, "ssh connection log", must_exist=False)
    with open(path, "a") as stream:
        stream.write(json.dumps({"host": host, "user": user, "command": command}) + "\n")


# -- the remote command ----------------------------------------------------------------------

def split_remote_command(command):
    """The words of a remote command line as a POSIX shell splits them (quotes, backslashes).

    Raises SshError (status 127) for anything a shell would expand, redirect or chain: the
    simulated sshd runs one plain command, never a shell.
    """
    words, word, quote, started = [], [], None, False
    characters = iter(command)
    for c in characters:
        if quote == "'":
            if c == "'":
                quote = None
            else:
                word.append(c)
        elif quote == '"':
            if c == '"':
                quote = None
            elif c in "$`":
                raise _not_simulated(command)
            elif c == "\\":
                following = next(characters, "")
                word.append(following if following in '$`"\\' else "\\" + following)
            else:
                word.append(c)
        elif c in " \t":
            if started:
                words.append("".join(word))
            word, started = [], False
        elif c in "'\"":
            quote, started = c, True
        elif c == "\\":
            word.append(next(characters, ""))
            started = True
        elif c in _SHELL_SPECIAL:
            raise _not_simulated(command)
        else:
            word.append(c)
            started = True
    if quote is not None:
        raise _not_simulated(command)
    if started:
        words.append("".join(word))
    return words


def _not_simulated(command):
    return SshError(f"sh (simulated dom0): {command[:200]}: command not found (only a plain "
                    "'rsync --server ...' runs on a simulated host)", 127)


def dom0_path(path, what):
    """The real path under DOM0_ROOT of a dom0 path of a remote command; a relative one starts
    at root's home directory, as ssh's remote commands do."""
    if not path:
        raise simpaths.Refused(f"{what} must not be empty")
    absolute = path if path.startswith("/") else ROOT_HOME + "/" + path
    return simpaths.inside_root(simpaths.dom0_root() + absolute, what)


def check_destination(full, what):
    """A receiving rsync's destination: an existing directory or regular file under DOM0_ROOT,
    or a new name in such a directory (rsync makes the last component itself)."""
    root = simpaths.dom0_root()
    bare = full.rstrip("/") or full
    if os.path.lexists(bare):
        if os.path.isdir(bare):
            real = os.path.realpath(bare)
            if real != root and not real.startswith(root + os.sep):
                raise simpaths.Refused(f"{what} {simpaths.shown(full)} resolves outside the simulated dom0")
        else:
            simpaths.regular_file(bare, what)
        return
    parent = os.path.realpath(os.path.dirname(bare))
    if parent != root and not parent.startswith(root + os.sep):
        raise simpaths.Refused(f"{what} {simpaths.shown(full)} resolves outside the simulated dom0")
    if not os.path.isdir(parent):
        raise simpaths.Refused(f"{what} {simpaths.shown(full)}: its directory does not exist")


def server_argv(words):
    """Check a remote "rsync --server ..." command (a receiver: someone pushes to this host)
    and return rsync's argv with its destination translated to DOM0_ROOT.

    Raises SshError 127 for another command, simpaths.Refused for options or paths the
    simulated host does not accept.
    """
    if not words or words[0] != "rsync" or words[1:2] != ["--server"]:
        raise _not_simulated(" ".join(words))
    options, rest = [], words[2:]
    while rest and rest[0] != ".":
        option = rest.pop(0)
        if option == "--sender":
            raise simpaths.Refused("rsync --server --sender: only pushing to a simulated host "
                                   "is simulated, not pulling from it")
        if not (_SERVER_FLAGS.fullmatch(option) or _TIMEOUT_OPTION.fullmatch(option)):
            raise simpaths.Refused(f"rsync --server option {option} is not simulated (devices are "
                                   "never created)")
        options.append(option)
    if len(rest) != 2:
        raise simpaths.Refused(f"rsync --server needs '.' and one destination, not {rest}")
    destination = dom0_path(rest[1], "rsync destination")
    if rest[1].endswith("/") and not destination.endswith("/"):
        destination += "/"
    check_destination(destination, "rsync destination")
    return ["rsync", "--server"] + options + [".", destination]


def remote_environment(host_uuid):
    """What a command started by the simulated sshd sees: not the caller's environment, but
    the simulated dom0's own variables, with XAPI_SIM_HOST naming the host it runs on."""
    root = simpaths.dom0_root()
    environment = {"PATH": simtools.BIN, "DOM0_ROOT": root,
                   "HOME": os.path.join(root, ROOT_HOME.lstrip("/")), "LC_ALL": "C",
                   "XAPI_SIM_HOST": host_uuid}
    for name in (XenAPI.LOCAL_SOCKET_ENV, "XENSTORED_SIM_SOCKET", "XAPI_SIM_PYTHON", "PYTHONPATH"):
        if os.environ.get(name):
            environment[name] = os.environ[name]
    return environment
