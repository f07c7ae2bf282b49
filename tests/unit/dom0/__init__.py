"""Unit tests of the dom0 plugins (src/os_xenapi/dom0/etc/xapi.d/plugins)."""
