"""Running dom0 commands for the plugins: argument lists only, never a shell, always a time limit.

run() is the one way a plugin starts a process. spawn() is the boundary where a process
actually starts; unit tests replace it to fake the commands. Errors name the command (its
first word) and never the whole command line, which may hold values a caller wants kept
out of logs and error reports.
"""

import os
import signal
import subprocess

from dom0lib.errors import COMMAND_FAILED, COMMAND_MISSING, COMMAND_TIMEOUT, PluginError

DEFAULT_TIMEOUT = 60.0
STDERR_TAIL = 400
# The last detail of a failure is never empty: Nova reads its last line
# (details[-1].splitlines()[-1]), which an empty string does not have.
NO_STDERR = "(no error output)"
# How long a killed command's pipes may stay open before they are closed on it.
REAP_SECONDS = 5.0
# dom0 keeps commands in these places; XAPI's forkexecd may start plugins with a short PATH.
EXTRA_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
              "/opt/xensource/bin")


class _AnyExitCode:
    """ok_codes that accept every exit code, for callers that report the code themselves."""

    def __contains__(self, code: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY_EXIT"


# Pass as run(ok_codes=ANY_EXIT) to get the result of a command whatever its exit code.
ANY_EXIT = _AnyExitCode()


class Completed:
    """What a finished command left: its exit code and its decoded output."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"Completed(returncode={self.returncode!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def command_name(argv: list) -> str:
    """The name errors and logs use for a command: the last part of its first word."""
    return os.path.basename(argv[0]) if argv else "?"


def _environment() -> dict:
    env = dict(os.environ)
    parts = [part for part in env.get("PATH", "").split(os.pathsep) if part]
    if not os.environ.get("DOM0_ROOT"):
        # In a simulated dom0 (DOM0_ROOT set) only its PATH counts: the host's own system
        # directories must never be reached, or a test would reconfigure the real machine.
        parts.extend(part for part in EXTRA_PATH if part not in parts)
    env["PATH"] = os.pathsep.join(parts)
    # Output is parsed: keep it in the C locale whatever the plugin inherited.
    env["LC_ALL"] = "C"
    return env


def spawn(argv: list, input_text: str = None, timeout: float = DEFAULT_TIMEOUT) -> Completed:
    """Run argv to completion and return what it left; raise only if it cannot run or hangs.

    The command gets its own process group, so a timeout kills it and anything it started.
    Raises PluginError COMMAND_MISSING or COMMAND_TIMEOUT.
    """
    name = command_name(argv)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(),
            close_fds=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise PluginError(COMMAND_MISSING, name) from None
    except PermissionError:
        raise PluginError(COMMAND_MISSING, name + " (not executable)") from None
    data = input_text.encode("utf-8") if input_text is not None else None
    try:
        out, err = process.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise PluginError(COMMAND_TIMEOUT, name, f"{timeout:g}") from None
    except BaseException:
        _kill_group(process)
        raise
    return Completed(process.returncode, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace"))


def _kill_group(process: "subprocess.Popen") -> None:
    """Kill the command's process group and reap the command, so nothing is left behind.

    A child that started a session of its own escapes the kill and may hold the output pipes
    open; after REAP_SECONDS the pipes are closed instead of waiting for it.
    """
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        process.communicate(timeout=REAP_SECONDS)
    except subprocess.TimeoutExpired:
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()


def run(argv: list, input_text: str = None, timeout: float = DEFAULT_TIMEOUT,
        ok_codes: tuple = (0,)) -> Completed:
    """Run a command given as a list of strings; return its result if its exit code is in ok_codes.

    Raises PluginError COMMAND_FAILED (with the command's name, exit code and the end of its
    stderr, or "(no error output)"), COMMAND_MISSING or COMMAND_TIMEOUT. TypeError if argv is not a list of strings:
    that is a bug in the plugin, never caller input.
    """
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError("commands.run needs a non-empty list of strings")
    result = spawn(argv, input_text, timeout)
    if result.returncode not in ok_codes:
        raise PluginError(COMMAND_FAILED, command_name(argv), str(result.returncode),
                          result.stderr.strip()[-STDERR_TAIL:] or NO_STDERR)
    return result
