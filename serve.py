"""GraCo as a Label Studio ML backend: the annotator places keypoints, sets a granularity (or types a part name) and
gets the brush mask back.

    python serve.py --checkpoint weights/simpleclick/sbd_vit_base.pth \\
        --lora_checkpoint weights/graco/GraCo_base_lora.pth --cpu --port 9090

Then in Label Studio: Settings > Model > Connect Model, URL http://localhost:9090, "Interactive preannotations" on.
It listens on 127.0.0.1 unless --host says otherwise; before opening it to a network set --basic-auth USER:PASS
(and the same in Label Studio's model connection).
Images on Label Studio's upload and local-files paths are read with --label-studio-url and --label-studio-token
(default $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY; otherwise the URL and token Label Studio sends on connecting).
"""
import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from isegm.cli import (LOG_FORMAT, UsageError, add_auth_argument, add_model_arguments, check_model_arguments,
                       prepare_model, resolve_basic_auth, warn_if_exposed)

logger = logging.getLogger("serve")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only; 0.0.0.0 for the network, with "
                             "--basic-auth)")
    parser.add_argument("--port", type=int, default=9090, help="port to listen on")
    parser.add_argument("--label-studio-url", default=os.environ.get("LABEL_STUDIO_URL"),
                        help="Label Studio's URL, for images on its upload and local-files paths")
    parser.add_argument("--label-studio-token", default=os.environ.get("LABEL_STUDIO_API_KEY"),
                        help="a Label Studio API token (legacy token or personal access token)")
    parser.add_argument("--allowed-hosts", default="",
                        help="comma-separated hosts whose plain http(s) image URLs may be read")
    parser.add_argument("--max-sessions", type=int, default=8,
                        help="annotation sessions (task images) kept; the least recently used is dropped")
    parser.add_argument("--max-session-megapixels", type=float, default=100,
                        help="image megapixels of all sessions together (a session holds about 36 MiB per "
                             "megapixel); the least recently used sessions are dropped above it")
    parser.add_argument("--max-image-pixels", type=int, default=50_000_000, help="largest image (width x height)")
    parser.add_argument("--max-image-mb", type=float, default=32, help="largest image file, in MiB")
    parser.add_argument("--negative-label", default="Negative", help="keypoint label of negative clicks")
    parser.add_argument("--pre-annotate-granularity", type=float, default=None,
                        help="answer requests without clicks (pre-annotation, 'Retrieve predictions') with the masks "
                             "of segment everything at this granularity in [0.1, 1] (default: no prediction)")
    parser.add_argument("--pre-annotate-points-per-side", type=int, default=16,
                        help="grid of the pre-annotation (N x N clicks)")
    add_auth_argument(parser, "HTTP basic auth; set the same in Label Studio's model connection")
    parser.add_argument("--max-concurrency", type=int, default=16,
                        help="connections and requests served at once; more get 503")
    parser.add_argument("--max-request-mb", type=float, default=8, help="largest request body, in MiB")
    parser.add_argument("--client-timeout", type=float, default=30,
                        help="seconds a client may take to send its request body (headers: 10 s)")
    args = parser.parse_args(argv)
    check_model_arguments(args)
    gra = args.pre_annotate_granularity
    if gra is not None and not 0.1 <= gra <= 1.0:
        raise UsageError(f"--pre-annotate-granularity {gra:g}: must be in [0.1, 1]")
    if args.pre_annotate_points_per_side < 1:
        raise UsageError("--pre-annotate-points-per-side must be at least 1")
    args.basic_auth = resolve_basic_auth(args.basic_auth)
    if not 0 <= args.port < 65536:
        raise UsageError("--port must be in 0..65535")
    if args.max_sessions < 1 or args.max_image_pixels < 1 or args.max_image_mb <= 0 or \
            args.max_session_megapixels <= 0:
        raise UsageError("--max-sessions, --max-session-megapixels, --max-image-pixels and --max-image-mb must be "
                         "positive")
    if args.max_concurrency < 1 or args.max_request_mb <= 0 or args.client_timeout <= 0:
        raise UsageError("--max-concurrency, --max-request-mb and --client-timeout must be positive")
    return args


def build_server(args: argparse.Namespace):
    """Load the model and make the (not yet serving) HTTP server."""

    from isegm.inference.utils import load_is_model
    from isegm.generation.everything import EverythingSettings
    from isegm.interactive import SharedModel
    from isegm.labelstudio.backend import GraCoBackend, PreAnnotation
    from isegm.labelstudio.images import ImageSource
    from isegm.labelstudio.server import BackendServer
    from isegm.labelstudio.sessions import SessionPool
    device, checkpoint, lora, settings = prepare_model(args)
    model = load_is_model(checkpoint, device, lora_checkpoint=lora, clip_weights=args.clip_weights)
    images = ImageSource(label_studio_url=args.label_studio_url, api_token=args.label_studio_token,
                         allowed_hosts=tuple(h.strip().lower() for h in args.allowed_hosts.split(",") if h.strip()),
                         max_bytes=int(args.max_image_mb * 2 ** 20), max_pixels=args.max_image_pixels)
    version = f"GraCo-{Path(lora or checkpoint).stem}"
    pool = SessionPool(SharedModel(model, device, settings), args.max_sessions,
                       max_pixels=int(args.max_session_megapixels * 1e6))
    pre_annotation = None if args.pre_annotate_granularity is None else PreAnnotation(
        args.pre_annotate_granularity, EverythingSettings(points_per_side=args.pre_annotate_points_per_side))
    backend = GraCoBackend(pool, images, model_version=version, negative_label=args.negative_label,
                           pre_annotation=pre_annotation)
    warn_if_exposed(args.host, args.basic_auth, "backend")
    return BackendServer((args.host, args.port), backend, basic_auth=args.basic_auth,
                         max_concurrency=args.max_concurrency, max_request_bytes=int(args.max_request_mb * 2 ** 20),
                         body_timeout=args.client_timeout)


def main(argv: Optional[List[str]] = None) -> int:
    from isegm.model.checkpoint import CheckpointError
    from isegm.utils.extras import ExtraMissing, require_extra
    try:
        require_extra("labelstudio", "label_studio_converter", "serve.py")  # named before --help, in one line
        args = parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
        server = build_server(args)
    except (UsageError, CheckpointError, ExtraMissing, OSError) as error:
        print(f"serve.py: error: {error}", file=sys.stderr)
        return 2
    logger.info("GraCo backend for Label Studio at %s (model %s)", server.url, server.backend.model_version)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
