"""Table and plot comparing the slider (fixed granularities) with the phrase signal, from analysis.sh's results.

    python scripts/complementarity.py outputs/analysis

Reads OUT/<dataset>/<part>/{gra<g>,phrase}/**/<dataset>_*.json (written by evaluate.py) and writes
OUT/complementarity.md and OUT/complementarity.png.
"""
import argparse
import json
import sys
from pathlib import Path


def collect(out: Path):
    rows = {}
    for summary_path in sorted(out.glob("*/*/*/**/*.json")):
        dataset, part, signal = summary_path.relative_to(out).parts[:3]
        summary = json.loads(summary_path.read_text())
        nocs = dict(zip([round(t, 2) for t in summary["noc_thresholds"]], summary["noc"]))
        rows.setdefault((dataset, part), {})[signal] = (nocs.get(0.85), summary["iou_first"], summary["samples"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    rows = collect(args.out)
    if not rows:
        print(f"no evaluate.py results under {args.out}", file=sys.stderr)
        return 1
    signals = sorted({s for values in rows.values() for s in values}, key=lambda s: (s == "phrase", s))
    lines = ["| dataset | part | " + " | ".join(signals) + " | best slider | phrase |",
             "| --- | --- | " + " | ".join("---" for _ in signals) + " | --- | --- |"]
    for (dataset, part), values in sorted(rows.items()):
        cells = [f"{values[s][0]:.2f}" if s in values and values[s][0] is not None else "-" for s in signals]
        sliders = [values[s][0] for s in values if s.startswith("gra") and values[s][0] is not None]
        best = f"{min(sliders):.2f}" if sliders else "-"
        phrase = f"{values['phrase'][0]:.2f}" if "phrase" in values and values["phrase"][0] is not None else "-"
        lines.append(f"| {dataset} | {part} | " + " | ".join(cells) + f" | {best} | {phrase} |")
    table = "NoC@85 per part: slider at fixed granularities and the phrase naming the part (lower is better)\n\n"
    (args.out / "complementarity.md").write_text(table + "\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for (dataset, part), values in sorted(rows.items()):
        gras = sorted((float(s[3:]), v[0]) for s, v in values.items() if s.startswith("gra") and v[0] is not None)
        line, = ax.plot([g for g, _ in gras], [n for _, n in gras], marker="o", label=f"{dataset}/{part} slider")
        if "phrase" in values and values["phrase"][0] is not None:
            ax.axhline(values["phrase"][0], color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("granularity (slider)")
    ax.set_ylabel("NoC@85")
    ax.set_title("slider (solid) versus phrase (dashed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "complementarity.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
