"""A small Glance stand-in for the glance plugin tests: HTTP or HTTPS (a trustme certificate)
on 127.0.0.1, serving image data for API v1 and v2 and recording uploads.

It answers the requests the plugin makes: GET and HEAD /v1/images/<id>, PUT /v1/images/<id>
(chunked), PATCH and GET /v2/images/<id>, GET and PUT /v2/images/<id>/file. A test sets
`answers[(method, path)] = (status, headers, body)` to make one request fail, and reads
`requests` to see what the plugin sent.
"""

import http.server
import io
import json
import ssl
import tarfile
import threading

from . import vhdfakes


def image_tarball(entries):
    """A gzip'd tar of (name, text) regular files, with a ./ directory entry first."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        top = tarfile.TarInfo(".")
        top.type = tarfile.DIRTYPE
        archive.addfile(top)
        for name, text in entries:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_vhd_text(parent=None, payload=""):
    """The text of a fake VHD (stubs/fake_vhd_util.py format)."""
    lines = [vhdfakes.fake_vhd_util().MAGIC]
    if parent:
        lines.append("parent=" + parent)
    if payload:
        lines.append("payload=" + payload)
    return "\n".join(lines) + "\n"


class Request:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            for _ in range(1 << 20):
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks), True
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raise AssertionError("endless chunked body")
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length), False

    def _answer(self):
        body, chunked = self._body()
        glance = self.server.glance
        request = Request(self.command, self.path, dict(self.headers), body)
        request.chunked = chunked
        glance.requests.append(request)
        status, headers, data = glance.answer(self.command, self.path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
            self.wfile.flush()
        if headers.get("Connection") == "close":
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_PATCH = _answer


class Glance:
    """The stand-in's state: images by id, the v1/v2 status, answers to override."""

    def __init__(self):
        self.images = {}
        self.status = "queued"
        self.answers = {}
        self.requests = []
        self.checksums = {}

    def answer(self, method, path):
        if (method, path) in self.answers:
            return self.answers[(method, path)]
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] in ("v1", "v2") and parts[1] == "images":
            image_id = parts[2]
            data_request = (parts[0] == "v1" and len(parts) == 3) or parts[3:] == ["file"]
            if method == "GET" and data_request:
                if image_id not in self.images:
                    return 404, {}, b"no such image"
                data = self.images[image_id]
                return 200, {"ETag": f'"{self.checksums[image_id]}"'}, data
            if method == "HEAD" and parts[0] == "v1":
                return 200, {"x-image-meta-status": self.status}, b""
            if method == "GET" and parts[0] == "v2":
                return 200, {"Content-Type": "application/json"}, json.dumps(
                    {"id": image_id, "status": self.status}).encode()
            if method == "PATCH":
                return 200, {"Content-Type": "application/json"}, b"{}"
            if method == "PUT":
                return (204 if parts[0] == "v2" else 200), {}, b""
        return 400, {}, b"unexpected request"

    def add_image(self, image_id, data):
        import hashlib
        self.images[image_id] = data
        self.checksums[image_id] = hashlib.md5(data).hexdigest()


class Server:
    """Glance on 127.0.0.1 in a thread; with ssl_context it speaks HTTPS. Use as a context."""

    def __init__(self, ssl_context=None):
        self.glance = Glance()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.glance = self.glance
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if ssl_context is not None else "http"
        self.port = self._server.server_address[1]
        # A short poll keeps shutdown() quick when the test ends.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    def url(self, host="127.0.0.1"):
        return f"{self.scheme}://{host}:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def server_context(ca, *names):
    """A server-side SSLContext with a certificate the trustme CA issued for names."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context
