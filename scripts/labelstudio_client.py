"""Ask Label Studio (which asks the GraCo backend) for a mask from clicks, as a script or custom front end would:
``POST /api/ml/{id}/interactive-annotating`` with the keypoints in ``context.result``. Standard library only.

    python scripts/labelstudio_client.py --url http://localhost:8080 --token TOKEN --project 1 --task 1 \\
        --label "Part 0.2" --click 50,50 --click 20,30,neg --out mask.png

A click is ``x,y`` in percent of the image; ``x,y,neg`` is a negative click (as Alt+click makes on the page).
Each request carries all clicks so far, so each click refines the object; the mask of the last one is written.
"""
import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
import zlib
from typing import Any, Dict, List, Tuple

logger = logging.getLogger("labelstudio_client")


def call(url: str, token: str, body: Any = None) -> Any:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def parse_click(text: str) -> Tuple[float, float, bool]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "neg"):
        raise argparse.ArgumentTypeError(f"a click is x,y or x,y,neg (percent of the image), got {text!r}")
    try:
        return float(parts[0]), float(parts[1]), len(parts) == 2
    except ValueError:
        raise argparse.ArgumentTypeError(f"a click is x,y or x,y,neg (percent of the image), got {text!r}") from None


def rle_to_alpha(rle: List[int], width: int, height: int) -> bytes:
    """The alpha channel of Label Studio's brush RLE (its own bit-packed run-length format, RGBA)."""
    bits = "".join(f"{byte:08b}" for byte in rle)
    position = 0

    def read(n: int) -> int:
        nonlocal position
        value = int(bits[position:position + n], 2)
        position += n
        return value

    total, word_size = read(32), read(5) + 1
    rle_sizes = [read(4) + 1 for _ in range(4)]
    out = bytearray()
    while len(out) < total:
        repeated = read(1)
        count = read(rle_sizes[read(2)]) + 1
        if repeated:
            out.extend([read(word_size)] * count)
        else:
            out.extend(read(word_size) for _ in range(count))
    return bytes(out[3::4][:width * height])


def write_png(path: str, alpha: bytes, width: int, height: int) -> None:
    """A grey PNG (mask 255, background 0), standard library only."""
    raw = b"".join(b"\x00" + alpha[row * width:(row + 1) * width] for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) +
                   chunk(b"IEND", b""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="Label Studio, e.g. http://localhost:8080")
    parser.add_argument("--token", required=True, help="a Label Studio legacy API token")
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--label", required=True, help="the keypoint label, e.g. 'Part 0.2' or 'Whole object'")
    parser.add_argument("--click", action="append", required=True, type=parse_click, help="x,y (or x,y,neg) in percent of the image")
    parser.add_argument("--from-name", default="click", help="the KeyPointLabels control's name")
    parser.add_argument("--to-name", default="image", help="the Image tag's name")
    parser.add_argument("--out", default="mask.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base = args.url.rstrip("/")
    try:
        backends = call(f"{base}/api/ml?project={args.project}", args.token)
        interactive = [b for b in backends if b.get("is_interactive")]
        if not interactive:
            logger.error("project %d has no interactive model: connect the GraCo backend first", args.project)
            return 2
        ml = interactive[0]["id"]
        results: List[Dict[str, Any]] = []
        answer: Dict[str, Any] = {}
        for x, y, positive in args.click:
            results.append({"type": "keypointlabels", "from_name": args.from_name, "to_name": args.to_name,
                            "is_positive": positive, "value": {"x": x, "y": y, "width": 0.5,
                                                               "keypointlabels": [args.label]}})
            answer = call(f"{base}/api/ml/{ml}/interactive-annotating", args.token,
                          {"task": args.task, "context": {"result": results}})
            if answer.get("errors"):
                logger.error("Label Studio answered: %s", "; ".join(answer["errors"]))
                return 1
            logger.info("%d click(s): score %.3f", len(results), answer["data"]["score"])
    except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
        logger.error("cannot talk to Label Studio at %s: %s", base, error)
        return 1
    result = answer["data"]["result"][0]
    width, height = result["original_width"], result["original_height"]
    alpha = rle_to_alpha(result["value"]["rle"], width, height)
    write_png(args.out, alpha, width, height)
    logger.info("mask %dx%d, %d pixels, written to %s", width, height, sum(1 for a in alpha if a > 127), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
