"""GraCo in the browser: click on an object, move the granularity slider from part to whole (or type a part name),
finish objects and download an instance PNG, a coloured preview and a COCO JSON.

    python app.py --checkpoint weights/simpleclick/sbd_vit_base.pth \\
        --lora_checkpoint weights/graco/GraCo_base_lora.pth --cpu [--port 7860] [--host 0.0.0.0] [--share]
        [--basic-auth USER:PASS]

It prints the local URL. It listens on 127.0.0.1 unless --host says otherwise; before opening it to a network (or
--share) set --basic-auth (or $GRACO_BASIC_AUTH_USER and $GRACO_BASIC_AUTH_PASS): the page then asks for them.
Run without arguments (as a Hugging Face Space runs it), it loads sbd_vit_base + GraCo_base_lora from weights/
(INTERACTIVE_MODELS_PATH of config.yml), on the GPU when there is one.
"""
import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine unless asked (--share)

from isegm.cli import (LOG_FORMAT, UsageError, add_auth_argument, add_model_arguments, check_model_arguments,
                       prepare_model, resolve_basic_auth, warn_if_exposed)

logger = logging.getLogger("app")

#: what a Space (``python app.py`` without arguments) runs
SPACE_ARGS = ["--checkpoint", "sbd_vit_base", "--lora_checkpoint", "GraCo_base_lora"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--host", default=None,
                        help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME as on a Space)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="also publish a temporary gradio.live link")
    add_auth_argument(parser, "the page asks for them (a login form), API clients send them (gradio_client's auth=)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="requests served at once (default: 1 on the CPU, 2 on a GPU); the model runs one "
                             "request at a time, the others render and encode meanwhile")
    parser.add_argument("--session-ttl", type=float, default=3600,
                        help="seconds a browser session's image and clicks are kept after its last request")
    parser.add_argument("--max-sessions", type=int, default=32,
                        help="browser tabs holding an image at once; one more drops the least recently used "
                             "tab's image (it is asked to open it again)")
    parser.add_argument("--max-image-side", type=int, default=2048,
                        help="uploads whose longer side exceeds this are resized to it (the model itself sees "
                             "at most --limit-longest-size)")
    parser.add_argument("--max-file-mb", type=float, default=50, help="largest upload, in MiB")
    parser.add_argument("--no-strip", action="store_true", help="do not compute the granularity strip")
    args = parser.parse_args(argv)
    check_model_arguments(args)
    args.basic_auth = resolve_basic_auth(args.basic_auth)
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError("--port must be in 1..65535")
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.max_sessions < 1:
        raise UsageError("--max-sessions must be at least 1")
    if args.session_ttl <= 0 or args.max_image_side < 16 or args.max_file_mb <= 0:
        raise UsageError("--session-ttl and --max-file-mb must be positive, --max-image-side at least 16")
    return args


def build(args: argparse.Namespace):
    """Load the model once and make the page (not yet launched); also the folders of its example photos."""
    from isegm.inference.utils import load_is_model
    from isegm.web.layout import build_app, example_photos
    from isegm.interactive import SharedModel
    from isegm.web.state import SessionLimit, WebSession

    device, checkpoint, lora, settings = prepare_model(args)
    for given, path in ((args.checkpoint, checkpoint), (args.lora_checkpoint, lora)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{given}: no such checkpoint (a path, or a name under the paths file's "
                             f"INTERACTIVE_MODELS_PATH, default weights/): put the published sbd_vit_base.pth "
                             f"(uncbiag/SimpleClick) in weights/simpleclick/ and GraCo_base_lora.pth (Zhao-Yian/GraCo) "
                             f"in weights/graco/, see weights/README.md")
    model = load_is_model(checkpoint, device, lora_checkpoint=lora, clip_weights=args.clip_weights)
    shared = SharedModel(model, device, settings)
    examples = example_photos()
    limit = SessionLimit(args.max_sessions)
    app = build_app(lambda: WebSession(shared, args.max_image_side, limit), shared.phrase_unavailable_reason,
                    strip=not args.no_strip, session_ttl=args.session_ttl, examples=examples)
    concurrency = args.concurrency or (1 if device.type == "cpu" else 2)
    app.queue(default_concurrency_limit=concurrency, max_size=64)
    logger.info("model %s on %s, precision %s, %d request(s) at a time", Path(lora or checkpoint).name, device,
                settings.precision, concurrency)
    return app, sorted({str(Path(path).parent) for path, _ in examples})


def main(argv: Optional[List[str]] = None) -> int:
    from isegm.model.checkpoint import CheckpointError
    from isegm.utils.extras import ExtraMissing, require_extra
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        import torch
        argv = SPACE_ARGS + ([] if torch.cuda.is_available() else ["--cpu"])
    try:
        require_extra("web", "gradio", "app.py")  # named before --help, in one line
        args = parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
        app, example_folders = build(args)
    except (UsageError, CheckpointError, OSError, ExtraMissing) as error:
        print(f"app.py: error: {error}", file=sys.stderr)
        return 2
    warn_if_exposed(args.host or os.environ.get("GRADIO_SERVER_NAME"), args.basic_auth, "web app", args.share)
    app.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False,
               allowed_paths=example_folders, max_file_size=int(args.max_file_mb * 2 ** 20), auth=args.basic_auth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
