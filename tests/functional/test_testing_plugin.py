"""The pytest plugin, seen from another project: its test files ask for the fixtures by name.

Each test writes a test file into a fresh directory with no conftest.py and runs pytest on it;
the fixtures must come from os-xenapi's ``pytest11`` entry point alone.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_xapi_simulator_is_a_started_one_host_pool(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import xmlrpc.client

        def test_login(xapi_simulator):
            proxy = xmlrpc.client.ServerProxy(xapi_simulator.url)
            login = proxy.session.login_with_password(
                xapi_simulator.username, xapi_simulator.password
            )
            assert login["Status"] == "Success"
            assert len(proxy.host.get_all(login["Value"])["Value"]) == 1
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_xapi_simulator_answers_failed_logins_at_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time
        import xmlrpc.client

        def test_bad_password(xapi_simulator):
            proxy = xmlrpc.client.ServerProxy(xapi_simulator.url)
            started = time.monotonic()
            login = proxy.session.login_with_password(xapi_simulator.username, "wrong")
            assert login["ErrorDescription"][0] == "SESSION_AUTHENTICATION_FAILED"
            assert time.monotonic() - started < 2
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_xapi_pool_has_a_master_and_a_member(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import xmlrpc.client

        def test_member_redirects_to_master(xapi_pool):
            assert xapi_pool.urls == [
                f"http://127.0.0.1:{xapi_pool.port}", f"http://127.0.0.2:{xapi_pool.port}"
            ]
            member = xmlrpc.client.ServerProxy(xapi_pool.urls[1])
            login = member.session.login_with_password(xapi_pool.username, xapi_pool.password)
            assert login["ErrorDescription"] == ["HOST_IS_SLAVE", "127.0.0.1"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_simulators_are_stopped_when_the_test_ends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import socket

        import pytest

        seen = []

        def test_uses_a_pool(xapi_pool):
            seen.append(xapi_pool)

        def test_the_pool_is_gone():
            (pool,) = seen
            for address in pool.addresses:
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((address, pool.port), timeout=5)
            assert not os.path.exists(pool.unix_path)
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_xapi_session_is_a_logged_in_sdk_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_session(xapi_session):
            assert xapi_session.handle.startswith("OpaqueRef:")
            assert len(xapi_session.xenapi.host.get_all()) == 1

        def test_a_test_may_log_out_itself(xapi_session):
            xapi_session.xenapi.session.logout()
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_xapi_session_skips_without_the_sdk(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys

        sys.modules["XenAPI"] = None  # as if the SDK were not installed
        """
    )
    pytester.makepyfile(
        """
        def test_session(xapi_session):
            raise AssertionError("xapi_session should have skipped")

        def test_simulator_needs_no_sdk(xapi_simulator):
            assert xapi_simulator.url.startswith("http://127.0.0.1:")
        """
    )
    # A separate process: the conftest hides the SDK from that process only.
    pytester.runpytest_subprocess().assert_outcomes(passed=1, skipped=1)
