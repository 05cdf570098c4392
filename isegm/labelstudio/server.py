"""HTTP for the backend: a threaded server (one thread per request) with bounded request size.

Errors are answered as ``{"error": message}`` with a 4xx/5xx status whose reason phrase is the message too, so that
Label Studio, which reports only the status line of a failed backend call, shows it to the annotator.
"""
import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

from .backend import GraCoBackend, RequestError

logger = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 8 * 2 ** 20
DRAIN_BYTES = 64 * 2 ** 20  # a larger body is not read: the connection is closed on it


class BackendServer(ThreadingHTTPServer):
    """``serve_forever()`` answers Label Studio at ``address`` with ``backend``."""

    daemon_threads = True

    def __init__(self, address: Tuple[str, int], backend: GraCoBackend, max_request_bytes: int = MAX_REQUEST_BYTES):
        self.backend = backend
        self.max_request_bytes = max_request_bytes
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        """Serve on a daemon thread (tests, benchmarks); stop with ``shutdown()``."""
        thread = threading.Thread(target=self.serve_forever, name="graco-backend", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: BackendServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/") in ("", "/health"):
            self._reply(HTTPStatus.OK, self.server.backend.health())
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {self.path}")

    def do_POST(self) -> None:
        route = self.path.split("?")[0].rstrip("/")
        handlers = {"/predict": self.server.backend.predict, "/setup": self.server.backend.setup,
                    "/webhook": lambda request: {}}  # Label Studio posts annotation events; nothing to learn
        handler = handlers.get(route)
        if handler is None:
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {self.path}")
            return
        start = time.perf_counter()
        try:
            request = self._read_json()
            answer = handler(request)
        except RequestError as error:
            self._error(error.status, str(error))
            return
        except Exception as error:  # a bug or an unexpected failure: report it, keep serving
            logger.exception("%s failed", route)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")
            return
        logger.debug("%s answered in %.3f s", route, time.perf_counter() - start)
        self._reply(HTTPStatus.OK, answer)

    def _read_body(self) -> Optional[bytes]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            return None
        if int(length) > self.server.max_request_bytes:
            self.close_connection = True
            self._discard(int(length))
            raise RequestError(f"the request is {length} bytes, more than the limit of "
                               f"{self.server.max_request_bytes}", status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(int(length))

    def _discard(self, length: int) -> None:
        """Read and drop a too-large body (up to DRAIN_BYTES), so that the client gets to read the error."""
        left = min(length, DRAIN_BYTES)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                return
            left -= len(chunk)

    def _read_json(self) -> Dict[str, Any]:
        body = self._read_body()
        if body is None:
            raise RequestError("the request needs a Content-Length", status=HTTPStatus.LENGTH_REQUIRED)
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(f"the request is not valid JSON ({error})") from None
        if not isinstance(request, dict):
            raise RequestError("the request must be a JSON object")
        return request

    def _error(self, status: int, message: str) -> None:
        logger.warning("%s %s -> %d: %s", self.command, self.path, int(status), message)
        self._reply(status, {"error": message}, reason=message)

    def _reply(self, status: int, body: Dict[str, Any], reason: Optional[str] = None) -> None:
        data = json.dumps(body).encode()
        if reason is not None:  # one latin-1 line for the status line
            reason = " ".join(reason.split())[:300].encode("latin-1", "replace").decode("latin-1")
        self.send_response(int(status), reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
