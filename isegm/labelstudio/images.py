"""Reading task images from the URLs Label Studio sends, with bounded size and an allow-list of hosts."""
import io
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

# Paths Label Studio serves itself (uploads, local storage, cloud-storage presigning): fetched with its API token.
LABEL_STUDIO_PATHS = ("/data/upload/", "/data/local-files/", "/tasks/")


class ImageError(ValueError):
    """A task image that cannot be used: missing, unreadable, too large or on a host that is not allowed."""


@dataclass
class ImageSource:
    """Where images come from.

    Args:
        label_studio_url: the Label Studio server (``http://host:port``), for its upload and local-files paths.
        api_token: a Label Studio API token (legacy ``Token`` key, or a personal access token, a JWT).
        allowed_hosts: further hosts (``host`` or ``host:port``) whose plain http(s) image URLs may be read.
        max_bytes: largest image file read.
        max_pixels: largest image (width x height) decoded.
        timeout: seconds per download.
    """
    label_studio_url: Optional[str] = None
    api_token: Optional[str] = None
    allowed_hosts: Tuple[str, ...] = ()
    max_bytes: int = 32 * 2 ** 20
    max_pixels: int = 50_000_000
    timeout: float = 20.0
    _access: Optional[str] = field(default=None, repr=False)

    def read(self, url: str) -> np.ndarray:
        """The image at ``url`` as H x W x 3 uint8 RGB; raises :class:`ImageError` saying what went wrong."""
        if not isinstance(url, str) or not url.strip():
            raise ImageError("the task has no image URL")
        full, use_token = self._resolve(url.strip())
        data = self._download(full, use_token)
        return self._decode(data, url)

    def _resolve(self, url: str) -> Tuple[str, bool]:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme in ("http", "https"):
            host = parsed.netloc.lower()
            ls_host = urllib.parse.urlsplit(self.label_studio_url).netloc.lower() if self.label_studio_url else None
            if host == ls_host:
                return url, True
            if host in self.allowed_hosts or (parsed.hostname or "").lower() in self.allowed_hosts:
                return url, False
            raise ImageError(f"image host {host!r} is not allowed (add it with --allowed-hosts)")
        if parsed.scheme or parsed.netloc:
            raise ImageError(f"unsupported image URL scheme {parsed.scheme!r} in {url!r}")
        path = url if url.startswith("/") else "/" + url
        if path.startswith("/upload/"):
            path = "/data" + path
        if not path.startswith(LABEL_STUDIO_PATHS):
            raise ImageError(f"{url!r} is neither a Label Studio upload/local-files path nor an http(s) URL")
        if not self.label_studio_url:
            raise ImageError(f"{url!r} is a Label Studio path: give the server --label-studio-url "
                             f"(or $LABEL_STUDIO_URL) to read it")
        return self.label_studio_url.rstrip("/") + path, True

    def _headers(self, use_token: bool) -> dict:
        if not use_token:
            return {}
        if not self.api_token:
            raise ImageError("reading Label Studio images needs an API token: give --label-studio-token "
                             "(or $LABEL_STUDIO_API_KEY)")
        if self.api_token.count(".") == 2:  # a personal access token: exchange it for a short-lived access token
            if self._access is None:
                self._access = self._refresh()
            return {"Authorization": f"Bearer {self._access}"}
        return {"Authorization": f"Token {self.api_token}"}

    def _refresh(self) -> str:
        import json
        request = urllib.request.Request(self.label_studio_url.rstrip("/") + "/api/token/refresh/",
                                         data=json.dumps({"refresh": self.api_token}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read(1 << 16))["access"]
        except (OSError, ValueError, KeyError) as error:
            raise ImageError(f"the Label Studio token was refused ({error})") from None

    def _download(self, url: str, use_token: bool, retry: bool = True) -> bytes:
        request = urllib.request.Request(url, headers=self._headers(use_token))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    raise ImageError(f"the image is {int(length)} bytes, more than the limit of {self.max_bytes}")
                data = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as error:
            if error.code == 401 and retry and self._access is not None:  # the access token expired
                self._access = None
                return self._download(url, use_token, retry=False)
            raise ImageError(f"cannot read the image {url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ImageError(f"cannot read the image {url}: {getattr(error, 'reason', error)}") from None
        if len(data) > self.max_bytes:
            raise ImageError(f"the image is larger than the limit of {self.max_bytes} bytes")
        return data

    def _decode(self, data: bytes, url: str) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > self.max_pixels:
                    raise ImageError(f"the image is {width} x {height}, more than the limit of {self.max_pixels} "
                                     f"pixels")
                return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
        except ImageError:
            raise
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise ImageError(f"{url} is not a readable image ({error})") from None
