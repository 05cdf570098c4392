"""Run by tests/test_evaluate_scale.py under torchrun: every rank asks for the digest of $DIGEST_WORKER_FILE and
writes (how many files it hashed itself, the digest it got) to $DIGEST_WORKER_OUT/rank<r>.txt."""
import os
import sys
from pathlib import Path

from isegm.engine.distributed import init_distributed, shutdown
from isegm.inference import evaluate_cli


def main() -> int:
    dist = init_distributed(True)
    hashed = []
    original = evaluate_cli.file_digest
    evaluate_cli.file_digest = lambda path: hashed.append(path) or original(path)
    try:
        (digest,) = evaluate_cli.shared_file_digests([Path(os.environ["DIGEST_WORKER_FILE"])], dist.rank,
                                                     dist.world_size)
        Path(os.environ["DIGEST_WORKER_OUT"], f"rank{dist.rank}.txt").write_text(f"{len(hashed)} {digest}")
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
