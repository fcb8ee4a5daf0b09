"""Runs emulator, mapper and poster on loopback as child processes for the demo."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed; run ./dev setup")
    return found


def _wait_for(port: int, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{name} did not listen on {port} within {timeout}s; see {log}")


@dataclass
class LocalStack:
    workdir: Path
    keep_running: bool = False
    emulator_url: str = ""
    mapper_target: str = ""
    poster_target: str = ""
    # With a key the poster also receives Xero's webhooks (docs/drift.md, Webhooks) at webhook_url.
    webhook_key: str = ""
    webhook_url: str = ""
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _files: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A fresh registry each run: the emulated organisation is new every time too.
        for leftover in self.workdir.glob("registry.db*"):
            leftover.unlink()
        emulator_port, mapper_port, poster_port = _free_port(), _free_port(), _free_port()
        self.emulator_url = f"http://127.0.0.1:{emulator_port}"
        self.mapper_target = f"127.0.0.1:{mapper_port}"
        self.poster_target = f"127.0.0.1:{poster_port}"
        env = dict(os.environ)
        webhooks: dict[str, str] = {}
        if self.webhook_key:
            webhook_target = f"127.0.0.1:{_free_port()}"
            self.webhook_url = f"http://{webhook_target}/xero/webhooks"
            webhooks = {
                "XEROLINK_WEBHOOK_ADDRESS": webhook_target,
                "XEROLINK_WEBHOOK_PATH": "/xero/webhooks",
                "XEROLINK_WEBHOOK_KEY": self.webhook_key,
            }
        self._start("emulator", [_script("xero-emulator"), "--port", str(emulator_port)], emulator_port, env)
        self._start(
            "mapper", [_script("xerolink-mapper")], mapper_port, {**env, "XEROLINK_MAPPER_ADDRESS": self.mapper_target}
        )
        self._start(
            "poster",
            [_script("xerolink-poster")],
            poster_port,
            {
                **env,
                "XEROLINK_POSTER_ADDRESS": self.poster_target,
                "XEROLINK_MAPPER_TARGET": self.mapper_target,
                "XEROLINK_DATABASE_URL": f"sqlite:///{self.workdir / 'registry.db'}",
                **webhooks,
            },
        )
        return self

    def _start(self, name: str, cmd: list[str], port: int, env: dict[str, str]) -> None:
        log = self.workdir / f"{name}.log"
        out = self._files.enter_context(open(log, "wb"))  # noqa: SIM115 - closed with the stack
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append((name, proc))
        _wait_for(port, proc, name, log)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.keep_running or exc is not None:
            for _, proc in reversed(self.processes):
                proc.terminate()
            for _, proc in reversed(self.processes):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self._files.close()
