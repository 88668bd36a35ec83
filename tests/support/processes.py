"""Real processes for tests: start with the test environment, wait until ready, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from sandbox.cli import gunicorn_argv


class ManagedProcess:
    """One malipo process (ingress, workers, sandbox, ...) with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_http(self, url: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited; see {self.log_path}:\n{self.output()[-3000:]}"
                )
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready at {url}; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hooks, no acks."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def ingress_process(env: dict[str, str], log_dir: Path, name: str = "ingress") -> ManagedProcess:
    return ManagedProcess(
        name,
        python_module("gunicorn", "-c", "python:ingress.gunicorn_conf", "ingress.wsgi:application"),
        env,
        log_dir,
    )


def worker_process(
    env: dict[str, str], log_dir: Path, name: str = "workers", threads: int = 4
) -> ManagedProcess:
    argv = python_module("dramatiq", "workers.main", "--processes", "1", "--threads", str(threads))
    return ManagedProcess(name, argv, env, log_dir)


def sandbox_process(env: dict[str, str], log_dir: Path) -> ManagedProcess:
    argv = gunicorn_argv(env["MALIPO_SANDBOX_HOST"], int(env["MALIPO_SANDBOX_PORT"]))
    return ManagedProcess("sandbox", argv, env, log_dir)
