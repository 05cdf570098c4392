"""HTTP for the backend: a Starlette app on uvicorn with bounded concurrency, request size and client time.

* Every answer is JSON; an error is ``{"error": message}`` with a 4xx/5xx status whose reason phrase is the message
  too: Label Studio reports only the status line of a failed interactive prediction.
* With ``basic_auth`` every endpoint needs HTTP basic auth (Label Studio's model connection has the fields); a
  request without it gets 401 before its body is read.
* A body larger than ``max_request_bytes`` is refused with 413 from its Content-Length, unread (the connection is
  closed); a body sent without a length is counted as it arrives and refused the same way.
* A client that takes longer than ``header_timeout`` to send its request line and headers, or ``body_timeout`` to
  send its body, is disconnected (408 for the body); idle keep-alive connections close after ``keep_alive`` s.
* At most ``max_concurrency`` connections and requests at a time: uvicorn answers further ones with 503.
* Predictions run on worker threads (the model itself runs one at a time, see :mod:`isegm.interactive.session`).
"""
import asyncio
import base64
import hmac
import json
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..utils.extras import require_extra
from .backend import GraCoBackend, RequestError

# the [labelstudio] extra: a missing package is named in one line with the command that installs it
_FEATURE = "the Label Studio backend"
h11 = require_extra("labelstudio", "h11", _FEATURE)
uvicorn = require_extra("labelstudio", "uvicorn", _FEATURE)
H11Protocol = require_extra("labelstudio", "uvicorn.protocols.http.h11_impl", _FEATURE).H11Protocol
Starlette = require_extra("labelstudio", "starlette.applications", _FEATURE).Starlette
run_in_threadpool = require_extra("labelstudio", "starlette.concurrency", _FEATURE).run_in_threadpool
_requests = require_extra("labelstudio", "starlette.requests", _FEATURE)
ClientDisconnect, Request = _requests.ClientDisconnect, _requests.Request
JSONResponse = require_extra("labelstudio", "starlette.responses", _FEATURE).JSONResponse
Route = require_extra("labelstudio", "starlette.routing", _FEATURE).Route

logger = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 8 * 2 ** 20


class BackendServer:
    """Serve ``backend`` at ``address`` (``(host, port)``; port 0 picks a free one): ``serve_forever()`` in the
    foreground, or ``start_in_thread()`` and later ``shutdown()``.

    Args:
        basic_auth: ``(user, password)`` every request must send, or None.
        max_concurrency: connections and requests served at once; more are answered 503.
    """

    def __init__(self, address: Tuple[str, int], backend: GraCoBackend, max_request_bytes: int = MAX_REQUEST_BYTES,
                 basic_auth: Optional[Tuple[str, str]] = None, max_concurrency: int = 16,
                 header_timeout: float = 10.0, body_timeout: float = 30.0, keep_alive: float = 5.0):
        self.backend = backend
        self.max_request_bytes = max_request_bytes
        self.body_timeout = body_timeout
        self._auth = None if basic_auth is None else _basic_credentials(*basic_auth)
        self.app = Starlette(routes=[
            Route("/", self._health, methods=["GET"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/setup", self._endpoint(backend.setup), methods=["POST"]),
            Route("/predict", self._endpoint(backend.predict), methods=["POST"]),
            # Label Studio posts annotation events here; GraCo has nothing to learn from them
            Route("/webhook", self._endpoint(lambda request: {}), methods=["POST"]),
        ], exception_handlers={404: self._not_found, 405: self._not_allowed})
        self.socket = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(address)
        protocol = type("GraCoH11Protocol", (_HeaderTimeoutProtocol,), {"header_timeout": header_timeout})
        config = uvicorn.Config(self.app, http=protocol, lifespan="off", log_config=None, access_log=False,
                                limit_concurrency=max_concurrency, timeout_keep_alive=keep_alive,
                                h11_max_incomplete_event_size=64 * 1024, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.socket])

    def start_in_thread(self) -> threading.Thread:
        """Serve on a daemon thread (tests, benchmarks) once it accepts connections; stop with ``shutdown()``."""
        self._thread = threading.Thread(target=self.serve_forever, name="graco-backend", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the backend server did not start")
            time.sleep(0.01)
        return self._thread

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.backend.queue.close()
        if self._thread is not None:
            self._thread.join(30)

    def server_close(self) -> None:
        self.socket.close()

    # ----- endpoints -------------------------------------------------------------------------------------------
    async def _health(self, request: Request) -> JSONResponse:
        denied = self._check_auth(request)
        return denied or JSONResponse(self.backend.health())

    def _endpoint(self, handler: Callable[[Dict[str, Any]], Dict[str, Any]]):
        async def endpoint(request: Request) -> JSONResponse:
            denied = self._check_auth(request)
            if denied is not None:
                return denied
            start = time.perf_counter()
            try:
                body = await self._read_json(request)
                answer = await run_in_threadpool(handler, body)
            except RequestError as error:
                return _error(request, error.status, str(error), close=error.status in (408, 411, 413))
            except Exception as error:  # a bug or an unexpected failure: report it, keep serving
                logger.exception("%s failed", request.url.path)
                return _error(request, 500, f"{type(error).__name__}: {error}")
            logger.debug("%s answered in %.3f s", request.url.path, time.perf_counter() - start)
            return JSONResponse(answer)
        return endpoint

    async def _not_found(self, request: Request, exc: Exception) -> JSONResponse:
        return self._check_auth(request) or _error(request, 404, f"no such endpoint: {request.method} "
                                                                 f"{request.url.path}")

    async def _not_allowed(self, request: Request, exc: Exception) -> JSONResponse:
        return self._check_auth(request) or _error(request, 405, f"{request.method} is not allowed on "
                                                                 f"{request.url.path}")

    # ----- request checks --------------------------------------------------------------------------------------
    def _check_auth(self, request: Request) -> Optional[JSONResponse]:
        if self._auth is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and hmac.compare_digest(value.strip().encode(), self._auth):
            return None
        response = _error(request, 401, "this backend needs HTTP basic auth (set it in Label Studio's model "
                                        "connection)", close=True)
        response.headers["WWW-Authenticate"] = 'Basic realm="GraCo backend", charset="UTF-8"'
        return response

    async def _read_json(self, request: Request) -> Dict[str, Any]:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise RequestError("the Content-Length is not a number", status=400)
            if int(length) > self.max_request_bytes:
                raise RequestError(f"the request is {length} bytes, more than the limit of "
                                   f"{self.max_request_bytes}", status=413)
        try:
            body = await asyncio.wait_for(self._read_body(request), self.body_timeout)
        except asyncio.TimeoutError:
            raise RequestError(f"the request body did not arrive within {self.body_timeout:g} s",
                               status=408) from None
        except ClientDisconnect:
            raise RequestError("the client disconnected before sending the whole request", status=400) from None
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as error:  # also too deep nesting, integers of too many digits
            raise RequestError(f"the request is not valid JSON ({str(error).splitlines()[0][:200]})") from None
        if not isinstance(parsed, dict):
            raise RequestError("the request must be a JSON object")
        return parsed

    async def _read_body(self, request: Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_request_bytes:
                raise RequestError(f"the request is more than the limit of {self.max_request_bytes} bytes",
                                   status=413)
            chunks.append(chunk)
        return b"".join(chunks)


REASON_HEADER = b"x-graco-reason"


class _ReasonConnection:
    """An h11 connection whose responses take their reason phrase from the REASON_HEADER header (then dropped)."""

    def __init__(self, conn: h11.Connection):
        self._conn = conn

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    def send(self, event):
        if isinstance(event, h11.Response):
            headers = [(k, v) for k, v in event.headers if k.lower() != REASON_HEADER]
            reasons = [v for k, v in event.headers if k.lower() == REASON_HEADER]
            if reasons:
                event = h11.Response(status_code=event.status_code, headers=headers, reason=reasons[0],
                                     http_version=event.http_version)
        return self._conn.send(event)


class _HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request line and headers take longer than
    ``header_timeout`` seconds (a slow client holding a connection slot), with the reason phrases of
    :class:`_ReasonConnection`."""

    header_timeout = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conn = _ReasonConnection(self.conn)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_headers():
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)
        elif self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            logger.warning("%s: no complete request within %g s: connection closed",
                           "%s:%d" % self.client if self.client else "a client", self.header_timeout)
            self.transport.close()


def _basic_credentials(user: str, password: str) -> bytes:
    if not user or not password or ":" in user:
        raise ValueError("basic auth needs a user (without ':') and a password")
    return base64.b64encode(f"{user}:{password}".encode()).strip()


def _error(request: Request, status: int, message: str, close: bool = False) -> JSONResponse:
    logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, message)
    reason = " ".join(message.split())[:300].encode("latin-1", "replace").decode("latin-1")
    headers = {REASON_HEADER.decode(): reason}
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"error": message}, status_code=status, headers=headers)


__all__ = ["BackendServer", "MAX_REQUEST_BYTES"]
