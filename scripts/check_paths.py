"""Stop with the missing path named when a dataset or weight file is not where config.yml says.

    python scripts/check_paths.py --paths-config config.yml --datasets GrabCut,DAVIS --weights a.pth,b.pth
    python scripts/check_paths.py --paths-config config.yml --print CLIP_WEIGHTS    # one entry, checked file
"""
import argparse
import sys
from pathlib import Path

from isegm.data.datasets import CONFIG_KEYS
from isegm.utils.config_file import ConfigError, read_paths_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths-config", "--config-path", "--cfg", "--config", dest="paths_config",
                        default="config.yml", help="paths file (YAML)")
    parser.add_argument("--datasets", default="")
    parser.add_argument("--weights", default="")
    parser.add_argument("--print", dest="print_key", default=None, help="print this entry of the paths file")
    args = parser.parse_args()
    config = Path(args.paths_config)
    if not config.is_file():
        print(f"missing: config file {config}", file=sys.stderr)
        return 1
    try:
        cfg = read_paths_config(config)
    except ConfigError as error:
        print(f"check_paths.py: error: {error}", file=sys.stderr)
        return 2
    if args.print_key:
        print(cfg.get(args.print_key, ""))
    for name in filter(None, args.datasets.split(",")):
        key = CONFIG_KEYS.get(name)
        if key is None:
            print(f"unknown dataset {name}; known: {', '.join(CONFIG_KEYS)}", file=sys.stderr)
            return 1
        if not cfg.get(key):
            print(f"missing: {key} (the folder of dataset {name}) in {config}", file=sys.stderr)
            return 1
        path = Path(str(cfg[key]))
        if not path.is_dir():
            print(f"missing: dataset {name} at {path} ({key} in {config})", file=sys.stderr)
            return 1
    for weight in filter(None, args.weights.split(",")):
        if not Path(weight).is_file():
            print(f"missing: weights {weight} (see weights/README.md)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
