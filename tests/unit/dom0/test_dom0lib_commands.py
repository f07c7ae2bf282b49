"""dom0lib.commands: real processes, started without a shell and always within a time limit.

Plugin files are imported in-process with a stand-in XenAPIPlugin (stubs/XenAPIPlugin.py)
put into sys.modules only while they load (see harness.py); XenAPI is the official SDK.
"""

import os
import sys
import time

import pytest

from . import harness

lib = harness.dom0lib()
commands = lib.commands
errors = lib.errors


def test_run_returns_the_output_of_a_successful_command():
    assert commands.run(["echo", "hello"]).stdout == "hello\n"


def test_run_passes_arguments_without_a_shell():
    assert commands.run(["echo", "$(id); rm -rf /"]).stdout == "$(id); rm -rf /\n"


def test_run_feeds_input_text_on_stdin():
    assert commands.run(["cat"], input_text="rules\n").stdout == "rules\n"


def test_run_gives_the_command_an_empty_stdin_when_there_is_no_input():
    assert commands.run(["cat"], timeout=5).stdout == ""


def test_failed_command_reports_name_exit_code_and_stderr():
    with pytest.raises(errors.PluginError) as info:
        commands.run([sys.executable, "-c", "import sys; sys.stderr.write('bad thing'); sys.exit(3)"])
    name = os.path.basename(sys.executable)
    assert (info.value.code, info.value.details) == (errors.COMMAND_FAILED, [name, "3", "bad thing"])


def test_a_command_that_fails_silently_still_ends_with_a_line_nova_can_read():
    with pytest.raises(errors.PluginError) as info:
        commands.run(["false"])
    assert info.value.details == ["false", "1", "(no error output)"]
    assert harness.nova_marker(info.value.details) == "(no error output)"


def test_failed_command_does_not_report_its_arguments():
    with pytest.raises(errors.PluginError) as info:
        commands.run(["false", "password=hunter2"])
    assert "hunter2" not in str(info.value)


def test_accepted_exit_code_is_not_an_error():
    assert commands.run(["false"], ok_codes=(0, 1)).returncode == 1


def test_missing_command_is_command_missing():
    with pytest.raises(errors.PluginError) as info:
        commands.run(["no-such-command-os-xenapi"])
    assert (info.value.code, info.value.details) == (
        errors.COMMAND_MISSING, ["no-such-command-os-xenapi"])


def test_command_past_its_time_limit_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "child.pid"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
              "time.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(errors.PluginError) as info:
        commands.run([sys.executable, "-c", script], timeout=1.0)
    assert info.value.code == errors.COMMAND_TIMEOUT
    assert time.monotonic() - started < 30
    child = int(marker.read_text())
    # The grandchild was in the killed process group; once reaped by init it is gone.
    for _ in range(200):
        if not os.path.exists(f"/proc/{child}") or "Z" in _state(child):
            break
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{child}") or "Z" in _state(child)


def test_a_child_escaping_the_kill_does_not_hold_the_timeout_open(tmp_path, monkeypatch):
    monkeypatch.setattr(commands, "REAP_SECONDS", 0.5)
    marker = tmp_path / "escaped.pid"
    # The grandchild starts a session of its own, so the group kill misses it, and it keeps
    # the command's stdout open for 30 s.
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'],\n"
              "                         start_new_session=True)\n"
              f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
              "time.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(errors.PluginError) as info:
        commands.run([sys.executable, "-c", script], timeout=1.0)
    elapsed = time.monotonic() - started
    os.kill(int(marker.read_text()), 9)
    assert info.value.code == errors.COMMAND_TIMEOUT
    assert elapsed < 10


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_run_refuses_a_command_string():
    with pytest.raises(TypeError):
        commands.run("echo hello; rm -rf /")


def test_commands_find_programs_in_dom0_directories_missing_from_path(monkeypatch):
    monkeypatch.delenv("DOM0_ROOT", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert commands.run(["true"]).returncode == 0


def test_commands_in_a_simulated_dom0_use_only_its_path(monkeypatch, tmp_path):
    monkeypatch.setenv("DOM0_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(errors.PluginError) as caught:
        commands.run(["true"])
    assert caught.value.code == errors.COMMAND_MISSING
