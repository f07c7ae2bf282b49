"""Hostile hosts for the client's tests: small threaded socket servers that answer XAPI requests
the way a host that means harm would (replies too long, trickled, malformed), and the helpers to
write such answers. The simulator is a well-behaved XAPI; these are not."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any


def jsonrpc_reply(result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()


def head(length: int | None, content_type: str = "application/json") -> bytes:
    framing = (b"Transfer-Encoding: chunked" if length is None else
               b"Content-Length: %d" % length)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%s\r\n\r\n"
            % (content_type.encode(), framing))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Host:
    """A TCP server on 127.0.0.1 that reads each HTTP request and calls ``answer(conn, body)``.

    ``stop`` is set when the test ends, so an answer that waits on it ends with the test. ``sent``
    counts the bytes the answers wrote with :meth:`send`; ``closed`` is set once the client has
    gone away in the middle of an answer.
    """

    def __init__(self, answer: Callable[[Host, socket.socket, bytes], None],
                 unix_path: str | None = None) -> None:
        self.answer = answer
        self.stop = threading.Event()
        self.closed = threading.Event()
        self.sent = 0
        self.requests: list[bytes] = []
        if unix_path is None:
            self._server = socket.create_server(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        else:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(unix_path)
            self._server.listen()
            self.url = f"unix://{unix_path}"
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # the server socket was closed: the test is over
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while not self.stop.is_set():
                    body = read_request(conn)
                    if body is None:
                        return
                    self.requests.append(body)
                    self.answer(self, conn, body)
            except OSError:
                self.closed.set()

    def __enter__(self) -> Host:
        self._accepting.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way (close does not)
        self._server.close()
        self._accepting.join(10)
        for conn in self._conns:  # a client that kept its connection open: end its recv()
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already
        for thread in self._threads:
            thread.join(10)


def read_request(conn: socket.socket) -> bytes | None:
    """One request's body (by its Content-Length), or None at the end of the stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    header, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            return None
        body += piece
    return body


def serve(answer: Callable[[Host, socket.socket, bytes], None],
          unix_path: str | None = None) -> Host:
    return Host(answer, unix_path)


def fixed(reply: bytes, content_type: str = "application/json") -> Callable[..., None]:
    """An answer that sends ``reply`` with its Content-Length, to every request."""
    def answer(host: Host, conn: socket.socket, body: bytes) -> None:
        host.send(conn, head(len(reply), content_type) + reply)
    return answer


def chunked(reply: bytes, piece: int = 65536) -> Callable[..., None]:
    """An answer that sends ``reply`` chunked, ``piece`` bytes a chunk."""
    def answer(host: Host, conn: socket.socket, body: bytes) -> None:
        host.send(conn, head(None))
        for start in range(0, len(reply), piece):
            host.send(conn, chunk(reply[start:start + piece]))
        host.send(conn, b"0\r\n\r\n")
    return answer


def xmlrpc_success(value_xml: str) -> bytes:
    return ("<methodResponse><params><param><value><struct><member><name>Status</name><value>"
            f"Success</value></member><member><name>Value</name>{value_xml}</member></struct>"
            "</value></param></params></methodResponse>").encode()


def closed_port_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# --------------------------------------------------------------------------- trickling

TRICKLE = 0.2  # seconds between two bytes: well inside any socket read timeout used here


def trickled(where: str) -> Callable[..., None]:
    """An answer that sends its bytes one at a time, TRICKLE s apart, until the test ends:
    from the status line on (``where="headers"``) or once the headers are out (``"body"``)."""
    def answer(host: Host, conn: socket.socket, body: bytes) -> None:
        reply = jsonrpc_reply("OpaqueRef:" + "t" * 4000)
        message = head(len(reply)) + reply
        if where == "body":
            start = len(head(len(reply)))
            host.send(conn, message[:start])
            message = message[start:]
        for index in range(len(message)):
            host.send(conn, message[index:index + 1])
            if host.stop.wait(TRICKLE):
                return
    return answer


def outcome_within(seconds: float, call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """(what ``call`` raised or None, seconds it took), failing the test if it is still running
    after ``seconds``: the thread is left to end when the hostile host stops."""
    result: list[Any] = []

    def run() -> None:
        started = time.monotonic()
        try:
            call()
            result.append((None, time.monotonic() - started))
        except BaseException as error:  # noqa: BLE001 - handed to the test
            result.append((error, time.monotonic() - started))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still waiting after {seconds} s"
    return result[0]


class TrickledTLS:
    """A TLS server whose side of the handshake comes one byte every TRICKLE s."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.stop = threading.Event()
        self.handshake_bytes = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TRICKLE)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
            while not self.stop.is_set():
                try:
                    tls.do_handshake()
                    return  # not reached while the client gives up first
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLError, OSError):
                    return
                pending = outgoing.read()
                try:
                    for index in range(len(pending)):
                        conn.sendall(pending[index:index + 1])
                        self.handshake_bytes += 1
                        if self.stop.wait(TRICKLE):
                            return
                    incoming.write(conn.recv(65536))
                except TimeoutError:
                    continue
                except OSError:
                    return

    def __enter__(self) -> TrickledTLS:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(10)
