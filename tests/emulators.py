"""Start the Google Cloud emulators as real servers on free loopback ports.

bqemulator serves the BigQuery REST API (DuckDB inside); gcp-storage-emulator serves the
Cloud Storage JSON API. Both run as child processes and are stopped afterwards.
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
def _serve(cmd: list[str], probe: str, log: Path) -> Iterator[None]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ.copy())
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


@contextlib.contextmanager
def bigquery_emulator(project: str, workdir: Path) -> Iterator[str]:
    install_duckdb_spatial()
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bqemulator",
        "start",
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        str(port),
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        str(free_port()),
        "--project",
        project,
        "--log-level",
        "warning",
    ]
    url = f"http://127.0.0.1:{port}"
    with _serve(cmd, f"{url}/bigquery/v2/projects/{project}/datasets", workdir / "bqemulator.log"):
        yield url


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
