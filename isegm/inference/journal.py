"""The evaluation journal: every finished sample's result, appended as it is produced, so that a killed run can be
continued by running the same command again.

Layout (one journal folder per results table, e.g. ``cvpr_NoBRS_20.journal/``)::

    <command id>/command.txt               what shapes the results (checkpoints, signal, protocol, datasets, ...,
                                           and ``code``: the identity of the code that computes them, see
                                           :func:`isegm.utils.code_identity.code_identity`)
    <command id>/<unit>.r<rank>.jsonl      one JSON line per finished sample of a unit (a dataset, or a
                                           checkpoint and dataset), written by that rank
    <command id>/complete                  the command finished

The command id is a hash of the command (``command.txt``, JSON, named so that tools collecting the
JSON summaries pass it by); a command that finished stays there, so running it again
recomputes nothing. A run is refused while another command's run into the same table is unfinished; when that run
was made by other code, its samples can never be continued by this code, and the one-line refusal says to remove
its folder to start afresh.
IoUs are stored as the decimal form of their float32 values, which reads back bit-identically.
"""
import hashlib
import json
import os
from pathlib import Path
from typing import Dict

import numpy as np

from ..utils.code_identity import describe
from ..utils.files import atomic_write
from .evaluation import SampleResult

FORMAT = 1


class JournalMismatch(ValueError):
    """The journal folder holds an unfinished run of another command."""


def command_id(command: dict) -> str:
    return hashlib.sha256(json.dumps(command, sort_keys=True).encode()).hexdigest()[:16]


def _encode(result: SampleResult) -> str:
    return json.dumps({"index": result.index, "ious": [[float(v) for v in ious] for ious in result.ious],
                       "gra": [int(g) for g in result.gra_indices], "skipped": result.skipped,
                       "seconds": round(result.seconds, 6)})


def _decode(line: str) -> SampleResult:
    record = json.loads(line)
    return SampleResult(int(record["index"]), [np.array(v, dtype=np.float32) for v in record["ious"]],
                        [int(g) for g in record["gra"]], record["skipped"], float(record["seconds"]))


class Journal:
    """One command's journal inside ``root`` (a folder beside the results table), seen from process ``rank``."""

    def __init__(self, root: Path, command: dict, rank: int = 0):
        self.root, self.rank = Path(root), rank
        self.command = {"format": FORMAT, **command}
        self.folder = self.root / command_id(self.command)
        self._checked = set()  # units whose file of this rank has been checked for a cut-short last line

    def open(self) -> None:
        """Create this command's folder, or find it; refuse (:class:`JournalMismatch`, one line) while another
        command's run in ``root`` is unfinished."""
        if self.root.is_dir():
            for other in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.folder):
                if (other / "complete").exists() or not (other / "command.txt").is_file():
                    continue
                try:
                    old = json.loads((other / "command.txt").read_text())
                except (OSError, ValueError):
                    continue
                diff = sorted(k for k in set(old) | set(self.command) if old.get(k) != self.command.get(k))
                if "code" in diff:
                    made_by = describe(old["code"]) if isinstance(old.get("code"), dict) else "unrecorded code"
                    raise JournalMismatch(f"{other} holds an unfinished run made by other code ({made_by}); its "
                                          f"samples are not mixed with this code's: remove {other} to start afresh")
                raise JournalMismatch(f"{other} holds an unfinished run of another command ({', '.join(diff)} "
                                      f"differ): run that command again to finish it, or remove {other}")
        path = self.folder / "command.txt"
        if not path.is_file():
            text = json.dumps(self.command, indent=2, sort_keys=True)
            atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    @property
    def complete(self) -> bool:
        return (self.folder / "complete").exists()

    def finished(self, unit: str) -> Dict[int, SampleResult]:
        """The results of ``unit`` written by any rank (a line cut short by a kill is ignored)."""
        results = {}
        for path in sorted(self.folder.glob(f"{glob_escape(unit)}.r*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    result = _decode(line)
                except (ValueError, KeyError, TypeError):
                    continue
                results.setdefault(result.index, result)
        return results

    def append(self, unit: str, result: SampleResult) -> None:
        """Add one sample's result to this rank's file of ``unit`` and flush it to disk."""
        path = self.folder / f"{unit}.r{self.rank}.jsonl"
        if unit not in self._checked:
            _drop_partial_line(path)
            self._checked.add(unit)
        with open(path, "a") as handle:
            handle.write(_encode(result) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def mark_complete(self) -> None:
        (self.folder / "complete").touch()


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that a killed process left without its newline, so the next line starts clean."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def unit_name(dataset: str, checkpoint: str = "") -> str:
    """The journal's name for one dataset evaluated with one checkpoint (``checkpoint``: the checkpoint's file
    name with its suffix, so ``x.pth`` and ``x.safetensors`` never share lines; empty for a single checkpoint)."""
    return f"{checkpoint}_{dataset}" if checkpoint else dataset
