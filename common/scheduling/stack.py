"""The local serverless stack: each function served by functions-framework on loopback.

This is how Cloud Run serves the functions (functions-framework behind gunicorn), so the
local scheduler and replay call them over real HTTP. `aircast serve` records where each
function listens in `$AIRCAST_HOME/endpoints.json`, which `aircast scheduler` reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.core.errors import AircastError
from common.scheduling.schedules import FUNCTIONS

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
ENDPOINTS_FILE = "endpoints.json"


class StackError(AircastError):
    """A function could not be started or found (500)."""


@dataclass
class ServedFunction:
    name: str
    url: str
    process: subprocess.Popen
    log: Path


def function_source(name: str) -> Path:
    if name not in FUNCTIONS:
        raise StackError(f"unknown function {name!r}; known: {', '.join(FUNCTIONS)}")
    source = FUNCTIONS_DIR / name / "main.py"
    if not source.is_file():
        raise StackError(f"{source} not found")
    return source


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start_function(
    name: str,
    port: int,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 60.0,
    source: Path | None = None,
) -> ServedFunction:
    """Start `functions-framework` for one function and wait until it accepts connections."""
    source = source or function_source(name)
    if port_open(host, port):
        raise StackError(f"port {port} on {host} is already in use")
    log = (log_dir or Path(os.environ.get("AIRCAST_HOME", ".aircast")) / "logs") / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "functions_framework",
        "--target",
        name,
        "--source",
        str(source),
        "--host",
        host,
        "--port",
        str(port),
    ]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise StackError(f"{name} exited with {proc.returncode} while starting:\n{tail}")
        if time.monotonic() > deadline:
            proc.kill()
            raise StackError(f"{name} did not listen on {host}:{port} within {timeout:.0f}s")
        time.sleep(0.1)
    return ServedFunction(name, f"http://{host}:{port}", proc, log)


def stop(served: list[ServedFunction]) -> None:
    for s in served:
        if s.process.poll() is None:
            s.process.terminate()
    for s in served:
        try:
            s.process.wait(10)
        except subprocess.TimeoutExpired:
            s.process.kill()
            s.process.wait()


@contextlib.contextmanager
def serve(
    names: list[str],
    port: int = 8080,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Iterator[dict[str, str]]:
    """Serve `names` on consecutive ports from `port` (0: free ports); yield name -> URL."""
    served: list[ServedFunction] = []
    try:
        for i, name in enumerate(names):
            p = free_port(host) if port == 0 else port + i
            log_dir = (home / "logs") if home else None
            served.append(start_function(name, p, host, env, log_dir))
        urls = {s.name: s.url for s in served}
        if home is not None:
            write_endpoints(home, urls)
        yield urls
    finally:
        stop(served)
        if home is not None:
            with contextlib.suppress(FileNotFoundError):
                (home / ENDPOINTS_FILE).unlink()


def write_endpoints(home: Path, urls: Mapping[str, str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / ENDPOINTS_FILE).write_text(json.dumps(dict(urls), indent=2) + "\n")


def read_endpoints(home: Path) -> dict[str, str]:
    path = home / ENDPOINTS_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise StackError(
            f"no {path}: start the functions first (`aircast serve ingest train predict api`) "
            "or pass --endpoint NAME=URL"
        ) from None
