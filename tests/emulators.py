"""Start the Google Cloud emulators as real servers on free loopback ports.

bqemulator serves the BigQuery REST API (DuckDB inside) and, on its gRPC port, the
BigQuery Storage Read and Write APIs (started through tests/bqemulator_main.py, which lets
the Read API read query results and keeps REST queries and Storage Write appends from
deadlocking each other); gcp-storage-emulator serves the Cloud Storage JSON API.
Both run as child processes and are stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_duckdb_spatial() -> None:
    """bqemulator loads DuckDB's spatial extension; offline it must come from the wheel."""
    import duckdb
    import duckdb_extension_spatial

    root = Path(duckdb_extension_spatial.__file__).parent / "extensions"
    matches = sorted(root.glob(f"v{duckdb.__version__}/spatial.duckdb_extension"))
    if not matches:
        raise RuntimeError(
            f"duckdb-extension-spatial has no build for duckdb {duckdb.__version__}; pin both "
            "to the same version"
        )
    con = duckdb.connect()
    con.execute(f"INSTALL '{matches[0]}'")
    con.close()


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"emulator exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2).read()
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"emulator did not answer {url} within {timeout}s:\n{log.read_text()[-3000:]}"
    )


@contextlib.contextmanager
def _serve(
    cmd: list[str], probe: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ | (env or {})
        )
    try:
        _wait(probe, proc, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class BigQueryEndpoints(NamedTuple):
    rest: str  # http://127.0.0.1:PORT, the BigQuery API (Settings.bigquery_endpoint)
    grpc: str  # 127.0.0.1:PORT, the Storage Read/Write APIs (bigquery_storage_endpoint)


@contextlib.contextmanager
def bigquery_emulator(project: str, workdir: Path) -> Iterator[BigQueryEndpoints]:
    install_duckdb_spatial()
    port, grpc_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "tests.bqemulator_main",
        "start",
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        str(port),
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--project",
        project,
        "--log-level",
        "warning",
    ]
    url = f"http://127.0.0.1:{port}"
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        )
    }
    with _serve(
        cmd, f"{url}/bigquery/v2/projects/{project}/datasets", workdir / "bqemulator.log", env
    ):
        yield BigQueryEndpoints(url, f"127.0.0.1:{grpc_port}")


@contextlib.contextmanager
def storage_emulator(bucket: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    exe = Path(sys.executable).parent / "gcp-storage-emulator"
    cmd = [
        str(exe),
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--default-bucket",
        bucket,
        "--in-memory",
        "--quiet",
    ]
    url = f"http://127.0.0.1:{port}"
    with _serve(cmd, f"{url}/storage/v1/b/{bucket}", workdir / "storage-emulator.log"):
        yield url
