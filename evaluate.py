"""NoC evaluation of SimpleClick / GraCo models (and the SAM baselines) on interactive-segmentation benchmarks.

The command line and what it writes are described in isegm/inference/evaluate_cli.py (python evaluate.py --help).
"""
import sys

from isegm.inference.evaluate_cli import main

if __name__ == "__main__":
    sys.exit(main())
