"""Load generation: wrk (closed loop, fixed concurrency) and an open-loop asyncio generator.

wrk is driven by Lua scripts written to a temporary directory: one walks a file of
``path<TAB>body`` lines (real Daraja callbacks of seeded payments), cycling through
them for a fixed time or sending each exactly once; one makes unique, valid payment
commands. Figures come from wrk's ``--latency`` text (requests/s, p50/p99, socket
errors, non-2xx) and from a ``done()`` hook that prints the exact percentiles.

The open-loop generator sends at a fixed rate whatever the answers do, and measures
each latency from the request's *scheduled* send time, so a slow answer cannot hide
the requests that should have gone out meanwhile (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

# -- results ---------------------------------------------------------------------------------


@dataclass
class HttpResult:
    """One load run against one target."""

    label: str
    target: str
    mode: str  # "closed-loop (wrk)" or "open-loop"
    connections: int
    duration_s: float
    requests: int
    rps: float
    accepted_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    offered_rps: float | None = None
    p999_ms: float | None = None

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


# -- wrk output ------------------------------------------------------------------------------

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS_S[unit]


@dataclass(frozen=True)
class WrkText:
    """What wrk's ``--latency`` report says."""

    requests: int
    duration_s: float
    rps: float
    percentiles_ms: dict[int, float]
    max_ms: float
    socket_errors: dict[str, int]
    non_2xx: int


def parse_wrk(text: str) -> WrkText:
    """Parse wrk 4's report; raises ValueError when it has no summary (wrk failed)."""
    summary = re.search(rf"(\d+) requests in {_DURATION}", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if summary is None or rps is None:
        raise ValueError(f"not a wrk report:\n{text[-2000:]}")
    percentiles = {
        int(p): _seconds(v, u) * 1000
        for p, v, u in re.findall(rf"^\s+(50|75|90|99)%\s+{_DURATION}\s*$", text, re.MULTILINE)
    }
    latency = re.search(rf"Latency\s+{_DURATION}\s+{_DURATION}\s+{_DURATION}", text)
    max_ms = _seconds(latency.group(5), latency.group(6)) * 1000 if latency else float("nan")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkText(
        requests=int(summary.group(1)),
        duration_s=_seconds(summary.group(2), summary.group(3)),
        rps=float(rps.group(1)),
        percentiles_ms=percentiles,
        max_ms=max_ms,
        socket_errors=socket_errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def parse_done_hook(text: str) -> dict[str, float] | None:
    """The exact figures our Lua ``done()`` prints (microseconds), if it ran."""
    match = re.search(r"^BENCH_JSON (\{.*\})$", text, re.MULTILINE)
    return json.loads(match.group(1)) if match else None


# -- Lua scripts -----------------------------------------------------------------------------

_COMMON_LUA = r"""
local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"p999": %d, "max": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""

# args: <file of path\tbody lines> <threads> <cycle|once>
_REPLAY_LUA = (
    _COMMON_LUA
    + r"""
local reqs = {}
local n, i, sent, answered = 0, 0, 0, 0
local mode = "cycle"
local healthz
-- wrk calls thread 0's request() once right after init() to check the request it makes;
-- that one is never sent, so it must not use up a body.
local verified = false

function init(args)
  verified = tid ~= 0
  local nthreads = tonumber(args[2])
  mode = args[3]
  local headers = {["Content-Type"] = "application/json"}
  local k = 0
  for line in io.lines(args[1]) do
    if mode == "cycle" or k % nthreads == tid then
      local tab = string.find(line, "\t", 1, true)
      reqs[#reqs + 1] = wrk.format(
        "POST", string.sub(line, 1, tab - 1), headers, string.sub(line, tab + 1))
    end
    k = k + 1
  end
  n = #reqs
  if mode == "cycle" then i = math.floor(tid * n / nthreads) end
  healthz = wrk.format("GET", "/healthz")
end

function request()
  if not verified then
    verified = true
    return reqs[1] or healthz
  end
  if mode == "once" and sent >= n then return healthz end
  i = i % n + 1
  sent = sent + 1
  return reqs[i]
end

function response(status, headers, body)
  if mode ~= "once" then return end
  -- the callbacks' answers (the ack, or any refusal), not the /healthz fillers
  if status ~= 200 or string.find(body, "ResultCode", 1, true) then
    answered = answered + 1
  end
  if answered >= n then wrk.thread:stop() end
end
"""
)

# args: <run tag> <api key>
_COMMANDS_LUA = (
    _COMMON_LUA
    + r"""
local counter = 0
local run
local headers

function init(args)
  run = args[1]
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2]}
end

function request()
  counter = counter + 1
  local n = tid * 10000000 + counter
  headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter
  local body = string.format(
    '{"amount": %d, "currency": "KES", "phone": "07%08d", "reference": "%s-%d-%d", ' ..
    '"description": "bench", "gateway": "daraja"}',
    100 * (1 + counter % 50), 20000000 + n % 70000000, run, tid, counter)
  return wrk.format("POST", "/v1/payments", headers, body)
end
"""
)


def write_replay_file(path: Path, requests: Sequence[tuple[str, bytes]]) -> Path:
    """``path<TAB>body`` per line (bodies are single-line JSON)."""
    with path.open("wb") as out:
        for url_path, body in requests:
            if b"\n" in body or b"\t" in url_path.encode():
                raise ValueError("bodies must be single-line and paths tab-free")
            out.write(url_path.encode() + b"\t" + body + b"\n")
    return path


@dataclass(frozen=True)
class WrkSettings:
    threads: int
    connections: int
    timeout_s: float = 10.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(
            "wrk is not installed: `apt-get install wrk` (make bench does this when it can)"
        )
    return found


class Wrk:
    """Runs wrk with a generated script; the raw reports are kept in ``workdir``."""

    def __init__(self, workdir: Path, settings: WrkSettings) -> None:
        self.workdir = workdir
        self.settings = settings
        self.binary = wrk_binary()
        (workdir / "replay.lua").write_text(_REPLAY_LUA)
        (workdir / "commands.lua").write_text(_COMMANDS_LUA)

    def _argv(self, url: str, script: str, duration_s: float, args: Sequence[str]) -> list[str]:
        s = self.settings
        return [
            self.binary,
            "--threads",
            str(s.threads),
            "--connections",
            str(s.connections),
            "--duration",
            f"{max(1, round(duration_s))}s",
            "--timeout",
            f"{round(s.timeout_s)}s",
            "--latency",
            "--script",
            str(self.workdir / script),
            url,
            "--",
            *args,
        ]

    def replay(self, label: str, url: str, replay_file: Path, duration_s: float) -> HttpResult:
        """Cycle through the file's requests for ``duration_s`` at fixed concurrency."""
        argv = self._argv(url, "replay.lua", duration_s, [str(replay_file), self._threads, "cycle"])
        return self._result(label, url, self._run(label, argv, duration_s + 30))

    def replay_once(
        self, label: str, url: str, replay_file: Path, until: Callable[[], bool], timeout_s: float
    ) -> HttpResult:
        """Send each request of the file once, as fast as the server takes them.

        wrk sleeps for its whole ``--duration`` even once its threads are done, so it is
        stopped (SIGINT: it still prints its report) as soon as ``until()`` says so.
        """
        argv = self._argv(url, "replay.lua", timeout_s, [str(replay_file), self._threads, "once"])
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while process.poll() is None and time.monotonic() < deadline and not until():
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        text = output.decode(errors="replace")
        (self.workdir / f"{label}.txt").write_text(text)
        return self._result(label, url, text)

    def commands(
        self, label: str, url: str, api_key: str, run_tag: str, duration_s: float
    ) -> HttpResult:
        argv = self._argv(url, "commands.lua", duration_s, [run_tag, api_key])
        return self._result(label, url, self._run(label, argv, duration_s + 30))

    @property
    def _threads(self) -> str:
        return str(self.settings.threads)

    def _run(self, label: str, argv: list[str], timeout_s: float) -> str:
        completed = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
        text = completed.stdout.decode(errors="replace") + completed.stderr.decode(errors="replace")
        (self.workdir / f"{label}.txt").write_text(text)
        return text

    def _result(self, label: str, url: str, text: str) -> HttpResult:
        report = parse_wrk(text)
        exact = parse_done_hook(text) or {}
        duration_s = exact.get("duration_us", report.duration_s * 1e6) / 1e6
        requests = int(exact.get("requests", report.requests))
        non_2xx = int(exact.get("status", report.non_2xx))

        def ms(key: str, percentile: int) -> float:
            if key in exact:
                return float(exact[key]) / 1000
            return report.percentiles_ms.get(percentile, float("nan"))

        return HttpResult(
            label=label,
            target=url,
            mode="closed-loop (wrk)",
            connections=self.settings.connections,
            duration_s=round(duration_s, 3),
            requests=requests,
            rps=round(requests / duration_s, 1) if duration_s else 0.0,
            accepted_rps=round((requests - non_2xx) / duration_s, 1) if duration_s else 0.0,
            p50_ms=round(ms("p50", 50), 2),
            p90_ms=round(ms("p90", 90), 2),
            p99_ms=round(ms("p99", 99), 2),
            p999_ms=round(ms("p999", 999), 2),
            max_ms=round(float(exact["max"]) / 1000 if "max" in exact else report.max_ms, 2),
            non_2xx=non_2xx,
            socket_errors=report.socket_errors,
        )


# -- open loop -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class OpenLoopSample:
    scheduled_at: float  # wall clock (time.time()) the request was due
    latency_s: float
    status: int  # 0: no answer (timeout, connection error)


async def _open_loop(
    base_url: str,
    requests: Sequence[tuple[str, bytes]],
    rate: float,
    max_in_flight: int,
    timeout_s: float,
) -> list[OpenLoopSample]:
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def healthz() -> None:
            async with session.get("/healthz") as response:
                await response.read()

        # Open a few keep-alive connections first, as a gateway's client would have.
        await asyncio.gather(*(healthz() for _ in range(min(16, max_in_flight))))
        loop = asyncio.get_running_loop()
        wall_offset = time.time() - loop.time()

        async def one(path: str, body: bytes, due: float) -> OpenLoopSample:
            status = 0
            try:
                async with session.post(path, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            return OpenLoopSample(due + wall_offset, loop.time() - due, status)

        start = loop.time() + 0.05
        tasks = []
        for i, (path, body) in enumerate(requests):
            due = start + i / rate
            delay = due - loop.time()
            # Behind schedule: send at once (the latency counts from ``due``), but let the
            # loop breathe so answers are read.
            await asyncio.sleep(max(0.0, delay))
            tasks.append(asyncio.create_task(one(path, body, due)))
        return list(await asyncio.gather(*tasks))


def _run_open_loop(
    base_url: str,
    requests: list[tuple[str, bytes]],
    rate: float,
    max_in_flight: int,
    timeout_s: float,
) -> list[OpenLoopSample]:
    return asyncio.run(_open_loop(base_url, requests, rate, max_in_flight, timeout_s))


def open_loop(
    label: str,
    base_url: str,
    requests: Sequence[tuple[str, bytes]],
    rate: float,
    *,
    max_in_flight: int = 512,
    timeout_s: float = 10.0,
    warmup_s: float = 0.0,
) -> tuple[HttpResult, list[OpenLoopSample]]:
    """Send ``requests`` at ``rate`` per second, open loop; the result and every sample.

    The generator runs in a process of its own: the bench's sampler threads must not
    delay its event loop (a late send would count as server latency). Requests due in
    the first ``warmup_s`` are sent at the same rate but left out of the figures: a
    server thread's first request opens its broker connection.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        sent = pool.submit(
            _run_open_loop, base_url, list(requests), rate, max_in_flight, timeout_s
        ).result()
    start = min(s.scheduled_at for s in sent)
    samples = [s for s in sent if s.scheduled_at >= start + warmup_s]
    latencies_ms = [s.latency_s * 1000 for s in samples]
    accepted = [s for s in samples if 200 <= s.status < 300]
    first = min(s.scheduled_at for s in samples)
    last_done = max(s.scheduled_at + s.latency_s for s in samples)
    duration_s = max(last_done - first, 1e-9)
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    result = HttpResult(
        label=label,
        target=base_url,
        mode="open-loop",
        connections=max_in_flight,
        duration_s=round(duration_s, 3),
        requests=len(samples),
        rps=round(len(samples) / duration_s, 1),
        accepted_rps=round(len(accepted) / duration_s, 1),
        p50_ms=round(percentile(latencies_ms, 50), 2),
        p90_ms=round(percentile(latencies_ms, 90), 2),
        p99_ms=round(percentile(latencies_ms, 99), 2),
        p999_ms=round(percentile(latencies_ms, 99.9), 2),
        max_ms=round(max(latencies_ms), 2),
        non_2xx=sum(1 for s in samples if s.status and not 200 <= s.status < 300),
        socket_errors={"failed": sum(1 for s in samples if s.status == 0)},
        statuses=statuses,
        offered_rps=rate,
    )
    return result, samples
