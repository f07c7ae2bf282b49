"""Test helpers for projects that use os-xenapi.

:mod:`os_xenapi.testing.plugin` is a pytest plugin, loaded automatically wherever os-xenapi is
installed, that gives tests a running XAPI simulator and a logged-in session to it.
"""
