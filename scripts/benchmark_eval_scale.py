"""evaluate.py throughput with 1 and 2 processes (torchrun, gloo on the CPU), in one run, on a tiny model.

Each launch is timed twice: the evaluation, then the same command again, which finds every sample in the journal
and evaluates none; the difference is the evaluation's own time (start-up, model loading and process-group set-up
excluded). The files of both launches are compared (timing columns aside). On a 2-core CPU the point is equal
results, not speed.

    python scripts/benchmark_eval_scale.py [--samples 48] [--n-clicks 10] [--processes 2]
"""
import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

from isegm.model import ModelConfig
from isegm.utils.machine import cpu_name


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).with_name("gpu_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--n-clicks", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    check = gpu_check()
    cfg = ModelConfig(**check.TINY)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        base, lora, paths = check.evaluation_setup(cfg, folder, args.samples)
        command = ["evaluate.py", "NoBRS", "--cpu", "--checkpoint", str(base), "--lora_checkpoint", str(lora),
                   "--datasets", "GrabCut", "--gra", "0.5", "--n-clicks", str(args.n_clicks), "--eval-mode",
                   "fixed128", "--save-ious", "--paths-config", str(paths)]
        rates, files = {}, {}
        for n in (1, args.processes):
            logs = folder / f"logs{n}"
            launch = [*check.launcher(n), str(check.ROOT / command[0]), *command[1:], "--logs-path", str(logs)]
            seconds = []
            for _ in range(2):  # the evaluation, then the same command with everything in the journal
                start = time.perf_counter()
                try:
                    check.run(launch)
                except RuntimeError as error:
                    print(error)
                    return 1
                seconds.append(time.perf_counter() - start)
            rates[n] = args.samples / max(seconds[0] - seconds[1], 1e-9)
            files[n] = check.evaluation_files(logs)
            print(f"{n} process(es): {seconds[0]:.1f} s in all, {seconds[1]:.1f} s without evaluating: "
                  f"{rates[n]:.2f} samples/s")
    same = files[1] == files[args.processes]
    print(f"{cpu_name()}, {args.samples} samples, tiny model, --gra 0.5 --n-clicks {args.n_clicks}, one thread per "
          f"process: {rates[1]:.2f} samples/s with 1 process, {rates[args.processes]:.2f} with {args.processes} "
          f"(ratio {rates[args.processes] / rates[1]:.2f}); files {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
