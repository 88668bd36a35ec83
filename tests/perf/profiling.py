"""``--profile``: py-spy samples a process tree during a stage; a summary of where CPU went.

py-spy (a dev dependency; needs ptrace, as root or with CAP_SYS_PTRACE) records
collapsed stacks (``--format raw``) of the thread holding the GIL (``--gil``) in each
process of the gunicorn or dramatiq tree while a stage runs: where the Python CPU
time goes. :func:`summarise` turns them into the functions that hold the most
samples, as self time (the leaf frame) and as total time (anywhere on the stack).
Sampling costs CPU on a 2-core machine: the figures of a profiled run are lower.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


class Profiler:
    """One py-spy recording, started before a stage and collected after it."""

    def __init__(self, name: str, pid: int, duration_s: float, out_dir: Path) -> None:
        self.name = name
        self.raw_path = out_dir / f"profile-{name}.txt"
        self.summary_path = out_dir / f"profile-{name}-top.txt"
        # The venv's bin is not always on PATH (``.venv/bin/python -m tests.perf.run``).
        binary = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        self.process: subprocess.Popen[bytes] | None = None
        if binary is None:
            print(f"[bench] py-spy not installed: no profile for {name}")
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            # Only the thread holding the GIL: where the Python CPU time goes (waits on
            # PostgreSQL and RabbitMQ show in the bench's pg_activity and latency figures).
            "--gil",
            "--rate",
            "100",
            "--duration",
            str(max(1, round(duration_s))),
            "--format",
            "raw",
            "--output",
            str(self.raw_path),
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self) -> Path | None:
        if self.process is None:
            return None
        _, err = self.process.communicate(timeout=60)
        if not self.raw_path.exists():
            print(f"[bench] py-spy failed for {self.name}: {err.decode(errors='replace')[-500:]}")
            return None
        self.summary_path.write_text(summarise(self.raw_path.read_text()))
        return self.summary_path


def _frame(frame: str) -> str:
    """``fn (path/to/module.py:123)`` → ``fn (path/to/module.py)``: lines of one function merge."""
    return _FRAME_LINE.sub(")", frame.strip())


def summarise(collapsed: str, top: int = 30) -> str:
    """The functions with the most samples, by self time and by total time."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        count = int(match.group("count"))
        frames = [_frame(f) for f in match.group("stack").split(";") if f.strip()]
        # py-spy prefixes process and thread frames: keep only Python frames ("fn (file)").
        frames = [f for f in frames if f.endswith(")") and " (" in f]
        if not frames:
            continue
        samples += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            total_time[frame] += count
    lines = [f"{samples} samples (threads holding the GIL)", "", "self time:"]
    for frame, count in self_time.most_common(top):
        lines.append(f"  {100 * count / max(samples, 1):5.1f}%  {frame}")
    lines += ["", "total time (on the stack):"]
    for frame, count in total_time.most_common(top):
        lines.append(f"  {100 * count / max(samples, 1):5.1f}%  {frame}")
    return "\n".join(lines) + "\n"
