"""The client transport's options, checked without a server: URLs, TLS settings, timeouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from os_xenapi.client import transport as tr

FINGERPRINT = "AB:" * 31 + "AB"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://xapi.example", ("http", "xapi.example", 80, "http://xapi.example:80")),
        ("https://10.0.0.1/", ("https", "10.0.0.1", 443, "https://10.0.0.1:443")),
        ("https://[::1]:8443", ("https", "::1", 8443, "https://[::1]:8443")),
        ("HTTP://Host:8080", ("http", "host", 8080, "http://host:8080")),
    ],
)
def test_tcp_urls_name_scheme_host_and_port(url: str, expected: tuple[Any, ...]) -> None:
    endpoint = tr.parse_url(url)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.url) == expected


def test_unix_local_is_the_dom0_socket() -> None:
    assert tr.parse_url("unix://local").path == "/var/lib/xcp/xapi"


def test_unix_urls_take_an_absolute_path() -> None:
    endpoint = tr.parse_url("unix:///run/xapi.sock")
    assert (endpoint.path, endpoint.url) == ("/run/xapi.sock", "unix:///run/xapi.sock")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://host", "scheme must be http, https or unix"),
        ("https://root:secret@host", "credentials do not belong"),
        ("https://host/RPC2", "without a path"),
        ("https://host/?session_id=x", "without a path"),
        ("https://host:99999", "port must be a number"),
        ("https://", "names no host"),
        ("unix://relative/path", "absolute socket path"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        tr.parse_url(url)


@pytest.mark.parametrize("url", ["https://root:hunter2@host", "ftp://root:hunter2@host",
                                 "unix://root:hunter2@host/var/xapi", "https://root:hunter2@[::1",
                                 " gopher://root:hunter2@host/x "])
def test_a_refused_url_never_echoes_its_password(url: str) -> None:
    with pytest.raises(ValueError) as info:
        tr.Transport(url)
    assert "hunter2" not in str(info.value)


def test_error_texts_name_the_url_as_given_and_the_transport_its_canonical_form() -> None:
    transport = tr.Transport(" HTTPS://Xapi.Example ")
    assert (transport.given_url, transport.url) == ("HTTPS://Xapi.Example", "https://xapi.example:443")
    assert tr.shown_url("ftp://root:pw@host/") == "ftp://<credentials>@host/"


def test_a_pinned_fingerprint_needs_64_hex_digits() -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        tr.Transport("https://host", verify="sha256:AB:CD")


def test_a_pinned_fingerprint_is_accepted_with_or_without_colons() -> None:
    tr.Transport("https://host", verify="sha256:" + FINGERPRINT).close()
    tr.Transport("https://host", verify="SHA256:" + FINGERPRINT.replace(":", "")).close()


def test_a_missing_ca_bundle_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(ValueError, match="no such CA bundle"):
        tr.Transport("https://host", verify=str(missing))


def test_verify_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="verify must be"):
        tr.Transport("https://host", verify=3)  # type: ignore[arg-type]


def test_verify_false_warns_once_naming_the_host() -> None:
    with pytest.warns(tr.InsecureTransportWarning, match="xapi.example"):
        tr.Transport("https://xapi.example", verify=False).close()


@pytest.mark.parametrize("bad", [0, -1, "5"])
def test_timeouts_must_be_positive_numbers(bad: Any) -> None:
    with pytest.raises(ValueError, match="Timeout.read"):
        tr.Timeout(read=bad)


def test_timeouts_are_values() -> None:
    assert tr.Timeout(connect=1, read=2) == tr.Timeout(connect=1, read=2)
    assert hash(tr.Timeout()) == hash(tr.DEFAULT_TIMEOUT)


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, jsonrpc, xmlrpc"):
        tr.Transport("http://host", protocol="soap")


def test_repr_shows_only_the_endpoint() -> None:
    transport = tr.Transport("http://host", protocol="xmlrpc")
    assert repr(transport) == "<Transport http://host:80 xmlrpc>"


def test_for_host_keeps_the_options() -> None:
    transport = tr.Transport("https://10.0.0.1:8443", verify="sha256:" + FINGERPRINT,
                             protocol="jsonrpc", maxsize=3)
    master = transport.for_host("10.0.0.2")
    assert (master.url, master.protocol, master.maxsize) == ("https://10.0.0.2:8443", "jsonrpc", 3)
    assert transport.for_host("fd00::2").url == "https://[fd00::2]:8443"
