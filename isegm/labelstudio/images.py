"""Reading task images from the URLs Label Studio sends: an allow-list of hosts checked on every redirect, Label
Studio's token sent to Label Studio only, its paths kept inside their folders, bounded size, EXIF orientation."""
import http.client
import io
import json
import logging
import posixpath
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

# Folders Label Studio serves itself (uploads, local storage, cloud-storage presigning): read with its API token.
LABEL_STUDIO_FOLDERS = ("/data/upload/", "/data/local-files/", "/tasks/")
MAX_REDIRECTS = 5


class ImageError(ValueError):
    """A task image that cannot be used: missing, unreadable, too large or on a host that is not allowed."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answered, not followed: :meth:`ImageSource._download` checks each target first."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class ImageSource:
    """Where images come from.

    Args:
        label_studio_url: the Label Studio server (``http://host:port``), for its upload and local-files paths.
        api_token: a Label Studio API token (legacy ``Token`` key, or a personal access token, a JWT).
        allowed_hosts: further hosts (``host`` or ``host:port``) whose plain http(s) image URLs may be read.
        max_bytes: largest image file read.
        max_pixels: largest image (width x height) decoded.
        timeout: seconds per download.
        max_downloads: downloads at the same time (more wait).

    A URL and a token sent by Label Studio's ``/setup`` are taken with :meth:`connect`, as one pair, and only when
    neither was configured here; the token goes to no host but that URL's. The first such URL stays: a later
    ``/setup`` may change the token, not the host (anyone who reaches the port can post one).
    """

    def __init__(self, label_studio_url: Optional[str] = None, api_token: Optional[str] = None,
                 allowed_hosts: Tuple[str, ...] = (), max_bytes: int = 32 * 2 ** 20, max_pixels: int = 50_000_000,
                 timeout: float = 20.0, max_downloads: int = 4):
        self.configured = bool(label_studio_url or api_token)
        self._pair: Tuple[Optional[str], Optional[str]] = (_origin(label_studio_url), api_token or None)
        self.allowed_hosts = tuple(h.lower() for h in allowed_hosts)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.timeout = timeout
        self._downloads = threading.BoundedSemaphore(max_downloads)
        self._lock = threading.Lock()
        self._access: Optional[Tuple[str, str]] = None  # (token it came from, short-lived access token)

    @property
    def label_studio_url(self) -> Optional[str]:
        return self._pair[0]

    @property
    def api_token(self) -> Optional[str]:
        return self._pair[1]

    def connect(self, url: Optional[str], token: Optional[str]) -> bool:
        """Take Label Studio's URL and token (from ``/setup``) as one pair; ignored (False) when the server was given
        either, when one of the two is missing, or when an earlier ``/setup`` named another host."""
        if self.configured or not url or not token:
            return False
        origin = _origin(str(url))
        if origin is None:
            return False
        with self._lock:
            if self._pair[0] is not None and self._pair[0] != origin:
                logger.warning("/setup named %s, but Label Studio at %s connected first: ignored (restart the "
                               "backend, or give --label-studio-url, to move it)", origin, self._pair[0])
                return False
            self._pair = (origin, str(token))
        return True

    def read(self, url: str) -> np.ndarray:
        """The image at ``url`` as H x W x 3 uint8 RGB (EXIF orientation applied); raises :class:`ImageError`."""
        if not isinstance(url, str) or not url.strip():
            raise ImageError("the task has no image URL")
        with self._lock:
            label_studio, token = self._pair
        try:
            full = self._resolve(url.strip(), label_studio)
            with self._downloads:
                data = self._download(full, label_studio, token)
        except ImageError:
            raise
        except ValueError as error:  # a URL or a redirect's Location that does not parse (e.g. "http://[::1")
            raise ImageError(f"the image URL is malformed ({error})") from None
        return self._decode(data, url)

    def label_studio_api(self, path: str, payload: Any = None) -> Any:
        """GET ``path`` of the connected Label Studio's API (or POST ``payload`` as JSON) with its token and return
        the parsed answer; no redirect is followed, so the token goes to that origin only. Raises
        :class:`ImageError` when there is no connection or Label Studio refuses."""
        with self._lock:
            label_studio, token = self._pair
        if not label_studio or not token:
            raise ImageError("no Label Studio connection (its URL and token come with /setup, or --label-studio-url "
                             "and --label-studio-token)")
        for attempt in range(2):
            headers = self._headers(label_studio, token)
            data = None
            if payload is not None:
                headers["Content-Type"] = "application/json"
                data = json.dumps(payload).encode()
            request = urllib.request.Request(label_studio + path, data=data, headers=headers,
                                             method="GET" if payload is None else "POST")
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    return json.loads(self._body(response) or b"null")
            except urllib.error.HTTPError as error:
                with error:
                    if error.code == 401 and attempt == 0 and self._access is not None:
                        self._access = None  # the short-lived access token expired
                        continue
                    raise ImageError(f"Label Studio refused {path}: HTTP {error.code} {error.reason}") from None
            except ValueError:
                raise ImageError(f"Label Studio's answer to {path} is not JSON") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                raise ImageError(f"cannot reach Label Studio at {label_studio}: {getattr(error, 'reason', error)}") \
                    from None

    # ----- URLs ------------------------------------------------------------------------------------------------
    def _resolve(self, url: str, label_studio: Optional[str]) -> str:
        """The full URL of a task's image reference, checked: a path is one of Label Studio's folders."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme or parsed.netloc:
            self._check(url, label_studio)
            return url
        path = url if url.startswith("/") else "/" + url
        if path.startswith("/upload/"):
            path = "/data" + path
        if not label_studio:
            if _inside_folder(urllib.parse.urlsplit(path)) is None:
                raise ImageError(f"{url!r} is neither a Label Studio upload/local-files path nor an http(s) URL")
            raise ImageError(f"{url!r} is a Label Studio path: give the server --label-studio-url "
                             f"(or $LABEL_STUDIO_URL) to read it")
        full = label_studio + path
        self._check(full, label_studio)
        return full

    def _check(self, url: str, label_studio: Optional[str]) -> bool:
        """Raise unless ``url`` may be read; True when it is on Label Studio's host (and gets the token)."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https"):
            raise ImageError(f"unsupported image URL scheme {parsed.scheme!r} in {url!r}")
        if parsed.username is not None or parsed.password is not None:
            raise ImageError(f"an image URL with credentials is not read: {_shown(url)}")
        if label_studio is not None and _origin(url) == label_studio:
            if _inside_folder(parsed) is None:
                raise ImageError(f"{_shown(url)} is not inside Label Studio's upload, local-files or task folders")
            return True
        host = parsed.netloc.lower()
        if host in self.allowed_hosts or (parsed.hostname or "").lower() in self.allowed_hosts:
            return False
        raise ImageError(f"image host {host!r} is not allowed (add it with --allowed-hosts)")

    # ----- download --------------------------------------------------------------------------------------------
    def _download(self, url: str, label_studio: Optional[str], token: Optional[str]) -> bytes:
        """GET ``url``, following at most MAX_REDIRECTS redirects, each checked as the first URL; the token only
        to Label Studio's own origin."""
        refreshed = False
        for _ in range(MAX_REDIRECTS + 1):
            to_label_studio = self._check(url, label_studio)
            headers = self._headers(label_studio, token) if to_label_studio else {}
            try:
                with _OPENER.open(urllib.request.Request(url, headers=headers), timeout=self.timeout) as response:
                    return self._body(response)
            except urllib.error.HTTPError as error:
                with error:
                    if error.code in (301, 302, 303, 307, 308) and error.headers.get("Location"):
                        url = urllib.parse.urljoin(url, error.headers["Location"])
                        continue
                    if error.code == 401 and to_label_studio and not refreshed and self._access is not None:
                        self._access, refreshed = None, True  # the short-lived access token expired
                        continue
                    raise ImageError(f"cannot read the image {_shown(url)}: HTTP {error.code} {error.reason}") \
                        from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                raise ImageError(f"cannot read the image {_shown(url)}: {getattr(error, 'reason', error)}") from None
        raise ImageError(f"more than {MAX_REDIRECTS} redirects reading the image")

    def _body(self, response) -> bytes:
        """The response body, at most ``max_bytes``, read within ``timeout`` seconds in all (a host that sends a
        byte now and then does not hold a download slot for ever)."""
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise ImageError(f"the image is {int(length)} bytes, more than the limit of {self.max_bytes}")
        deadline = time.monotonic() + self.timeout
        chunks, size = [], 0
        while True:
            chunk = response.read1(1 << 16)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise ImageError(f"the image is larger than the limit of {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise ImageError(f"the image did not arrive within {self.timeout:g} s")
            chunks.append(chunk)

    def _headers(self, label_studio: Optional[str], token: Optional[str]) -> dict:
        if not token:
            raise ImageError("reading Label Studio images needs an API token: give --label-studio-token "
                             "(or $LABEL_STUDIO_API_KEY)")
        if token.count(".") == 2:  # a personal access token: exchange it for a short-lived access token
            access = self._access
            if access is None or access[0] != token:
                access = (token, self._refresh(label_studio, token))
                self._access = access
            return {"Authorization": f"Bearer {access[1]}"}
        return {"Authorization": f"Token {token}"}

    def _refresh(self, label_studio: str, token: str) -> str:
        request = urllib.request.Request(label_studio + "/api/token/refresh/",
                                         data=json.dumps({"refresh": token}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return json.loads(response.read(1 << 16))["access"]
        except (OSError, ValueError, KeyError, http.client.HTTPException) as error:
            raise ImageError(f"the Label Studio token was refused ({error})") from None

    def _decode(self, data: bytes, url: str) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > self.max_pixels:
                    raise ImageError(f"the image is {width} x {height}, more than the limit of {self.max_pixels} "
                                     f"pixels")
                upright = ImageOps.exif_transpose(image)  # phone photos: rotate as the camera says
                return np.asarray(upright.convert("RGB"), dtype=np.uint8).copy()
        except ImageError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise ImageError(f"{_shown(url)} is not a readable image ({error})") from None


def _origin(url: Optional[str]) -> Optional[str]:
    """``scheme://host:port`` (lower case, default port dropped) of an http(s) URL, else None."""
    if not url:
        return None
    parsed = urllib.parse.urlsplit(str(url).strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    try:
        port = parsed.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}[parsed.scheme]
    host = parsed.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parsed.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _inside_folder(parsed: urllib.parse.SplitResult) -> Optional[str]:
    """The folder of LABEL_STUDIO_FOLDERS that the percent-decoded path lies inside, else None.

    A path with a ``..`` segment (encoded or not), a backslash or a NUL is refused, not resolved:
    ``/data/upload/../../api/x`` leaves its folder. A local-files ``?d=`` path must be relative, without ``..``."""
    path = urllib.parse.unquote(parsed.path)
    if "\\" in path or "\x00" in path or ".." in path.split("/"):
        return None
    normal = posixpath.normpath(path) + ("/" if path.endswith("/") else "")
    folder = next((f for f in LABEL_STUDIO_FOLDERS if normal.startswith(f)), None)
    if folder == "/data/local-files/":
        for value in urllib.parse.parse_qs(parsed.query).get("d", []):
            if value.startswith("/") or "\\" in value or "\x00" in value or ".." in value.split("/"):
                return None
    return folder


def _shown(url: str) -> str:
    """The URL without its query (a presigned URL's signature is not logged)."""
    parsed = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))
