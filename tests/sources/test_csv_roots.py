"""The csv source reads only under its configured root: AIRCAST_CSV_PATH locally, and on
gcp the `imports/` prefix of the artifact bucket. Any other path is a 400 naming `path`,
decided before the file is opened."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

import common.sources.csv_files as csv_files
from common.core.config import Settings
from common.core.errors import BadRequest
from common.ingest.job import IngestRequest, run_ingest
from common.runtime.services import Services
from common.storage import open_store
from common.warehouse import open_warehouse

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
CSV = "location_id,ts,pm2_5\nsite-1,2024-03-01T00:00:00Z,10\nsite-1,2024-03-01T01:00:00Z,11\n"


def _services(settings: Settings, root: Path | None) -> Services:
    settings = settings.model_copy(update={"csv_path": root})
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    return Services(settings, warehouse, open_store(settings))


def _request(path: str) -> IngestRequest:
    return IngestRequest(
        as_of=AS_OF, start="2024-03-01T00:00Z", end="2024-03-01T02:00Z", source="csv", path=path
    )


@pytest.fixture
def never_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every CSV the source parses is recorded; a refused path must leave this empty."""
    opened: list[str] = []
    real = csv_files._parse.__wrapped__

    def spy(path: str, size: int, mtime_ns: int):
        opened.append(path)
        return real(path, size, mtime_ns)

    monkeypatch.setattr(csv_files, "_parse", spy)
    return opened


def test_paths_outside_the_root_are_a_400_without_opening_them(
    local_settings: Settings, tmp_path: Path, never_opened: list[str]
) -> None:
    root, outside = tmp_path / "imports", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text(CSV)  # would parse: only the root check stops it
    (root / "link.csv").symlink_to(outside / "secret.csv")
    (root / "dirlink").symlink_to(outside)
    svc = _services(local_settings, root)
    for path in (
        "/etc/passwd",
        str(outside / "secret.csv"),
        str(root / ".." / "elsewhere" / "secret.csv"),
        str(root / "link.csv"),
        str(root / "dirlink"),
        "gs://some-bucket/imports/a.csv",  # not on the local backend
    ):
        with pytest.raises(BadRequest) as err:
            run_ingest(_request(path), svc)
        assert err.value.field == "path", path
    assert never_opened == []
    assert svc.warehouse.query("SELECT * FROM run_status").empty  # no run started


def test_without_a_configured_root_no_path_is_read(
    local_settings: Settings, tmp_path: Path, never_opened: list[str]
) -> None:
    (tmp_path / "a.csv").write_text(CSV)
    with pytest.raises(BadRequest, match="AIRCAST_CSV_PATH") as err:
        run_ingest(_request(str(tmp_path / "a.csv")), _services(local_settings, None))
    assert err.value.field == "path" and never_opened == []


def test_files_under_the_root_are_read(local_settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "history"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.csv").write_text(CSV)
    os.symlink(root / "sub" / "a.csv", root / "inside-link.csv")  # stays within the root
    svc = _services(local_settings, root)
    assert run_ingest(_request(str(root / "sub" / "a.csv")), svc)["counts"]["written"] == 2
    assert run_ingest(_request(str(root)), svc)["counts"]["unchanged"] == 2  # the folder
    default = IngestRequest(as_of=AS_OF, start="2024-03-01T00:00Z", end="2024-03-01T02:00Z",
                            source="csv")  # fmt: skip
    assert run_ingest(default, svc)["status"] == "success"  # AIRCAST_CSV_PATH by default


def test_on_gcp_objects_under_imports_are_read_and_nothing_else(
    gcp_settings: Settings, never_opened: list[str]
) -> None:
    svc = _services(gcp_settings, None)
    svc.store.put("imports/2024/history.csv", CSV.encode())
    svc.store.put("models/aircast/production.json", CSV.encode())  # CSV-shaped, not an import
    bucket = gcp_settings.bucket
    for path in (
        f"gs://{bucket}/models/aircast/production.json",
        "gs://other-bucket/imports/2024/history.csv",
        f"gs://{bucket}/imports/../models/aircast/production.json",
        f"gs://{bucket}/imports/missing.csv",
        "/etc/passwd",
    ):
        with pytest.raises(BadRequest) as err:
            run_ingest(_request(path), svc)
        assert err.value.field == "path", path
    assert never_opened == []
    one = run_ingest(_request(f"gs://{bucket}/imports/2024/history.csv"), svc)
    assert one["counts"]["written"] == 2
    folder = run_ingest(_request(f"gs://{bucket}/imports/"), svc)
    assert folder["counts"]["unchanged"] == 2
