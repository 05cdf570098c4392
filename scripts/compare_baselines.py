"""One table of GraCo (oracle granularity), the SimpleClick base, SAM and SAM 2 from evaluate.py's JSON summaries.

    python scripts/compare_baselines.py experiments/evaluation_logs [--datasets PascalPart,PartImageNet,SA1B]
        [--out outputs/analysis/baselines.md] [--all-signals]

Reads every ``<dataset>_*.json`` summary under the folder (eval.sh writes each run into its own sub-folder) and
prints, per method and dataset, NoC@80 / NoC@85 and the first-click IoU (%). Methods: GraCo with the oracle
granularity, the SimpleClick base alone (no LoRA, no signal), SAM and SAM 2 with the oracle of three masks or a
single mask; ``--all-signals`` also lists fixed granularities and phrases. When two summaries give the same
method on the same dataset, the newer file is used and the other is named on stderr.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

PART_DATASETS = "PascalPart,PartImageNet,SA1B"
SAM_LABELS = {"SAM": "SAM", "SAM2": "SAM 2"}


def method_of(summary: dict, all_signals: bool) -> Optional[Tuple[int, str]]:
    """(sort key, label) of the method a summary belongs to, or None to leave it out."""
    signal, model = summary.get("signal", ""), summary.get("model", "?")
    sam_type = summary.get("sam_type")
    if sam_type:
        how = "oracle of 3 masks" if signal == "oracle-of-3-masks" else "single mask"
        return (2 if sam_type == "SAM" else 3), f"{SAM_LABELS.get(sam_type, sam_type)} {summary.get('sam_model')}, {how}"
    lora = summary.get("lora_checkpoint")
    lora_name = f" + {Path(lora).stem}" if lora else ""
    if signal.startswith("oracle"):
        clean = ", clean sweeps" if signal == "oracle-clean" else ""
        return 0, f"GraCo ({model}{lora_name}), oracle granularity{clean}"
    if signal == "none" and not lora:
        return 1, f"SimpleClick base ({model})"
    if all_signals:
        return 4, f"{model}{lora_name}, {signal}"
    return None


def collect(folder: Path, datasets, all_signals: bool) -> Dict[Tuple[int, str], Dict[str, dict]]:
    table: Dict[Tuple[int, str], Dict[str, Tuple[float, Path, dict]]] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(summary, dict) or summary.get("dataset") not in datasets or "noc" not in summary:
            continue
        method = method_of(summary, all_signals)
        if method is None:
            continue
        cell = table.setdefault(method, {})
        previous = cell.get(summary["dataset"])
        mtime = path.stat().st_mtime
        if previous is not None:
            older, newer = sorted([previous, (mtime, path, summary)], key=lambda item: item[0])
            print(f"{method[1]} on {summary['dataset']}: using {newer[1]}, not {older[1]}", file=sys.stderr)
            cell[summary["dataset"]] = newer
        else:
            cell[summary["dataset"]] = (mtime, path, summary)
    return {method: {d: v[2] for d, v in cells.items()} for method, cells in table.items()}


def noc_at(summary: dict, threshold: float) -> Optional[float]:
    values = dict(zip((round(t, 2) for t in summary.get("noc_thresholds", [])), summary["noc"]))
    return values.get(threshold)


def format_cell(summary: Optional[dict]) -> str:
    if summary is None:
        return "-"
    parts = [noc_at(summary, 0.8), noc_at(summary, 0.85)]
    nocs = "/".join("?" if v is None else f"{v:.2f}" for v in parts)
    return f"{nocs}/{100 * summary['iou_first']:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", type=Path, help="folder with evaluate.py results (searched recursively)")
    parser.add_argument("--datasets", default=PART_DATASETS, help=f"comma-separated (default {PART_DATASETS})")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    parser.add_argument("--all-signals", action="store_true", help="also fixed granularities and phrases")
    args = parser.parse_args()
    if not args.logs.is_dir():
        print(f"compare_baselines.py: error: {args.logs} is not a folder", file=sys.stderr)
        return 2
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    table = collect(args.logs, datasets, args.all_signals)
    if not table:
        print(f"compare_baselines.py: error: no evaluate.py summaries for {', '.join(datasets)} under {args.logs} "
              f"(run eval.sh first)", file=sys.stderr)
        return 2
    lines = ["NoC@80 / NoC@85 / IoU@1 (%) per dataset (lower NoC is better); "
             "from evaluate.py's JSON summaries under " + str(args.logs), "",
             "| method | " + " | ".join(datasets) + " |",
             "| --- | " + " | ".join("---" for _ in datasets) + " |"]
    for method in sorted(table):
        lines.append(f"| {method[1]} | " + " | ".join(format_cell(table[method].get(d)) for d in datasets) + " |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
