from __future__ import annotations

from pathlib import Path

import pytest

from common.core.config import ConfigError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch):
    for var in ("AIRCAST_BACKEND", "AIRCAST_HOME", "AIRCAST_DATASET", "AIRCAST_TARGET"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert (s.backend, s.home, s.dataset, s.target, s.horizon) == (
        "local",
        Path(".aircast"),
        "aircast",
        "pm2_5",
        24,
    )


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("AIRCAST_HOME", str(tmp_path))
    monkeypatch.setenv("AIRCAST_BACKEND", "gcp")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project-1")
    monkeypatch.setenv("AIRCAST_BUCKET", "my-bucket")
    monkeypatch.setenv("AIRCAST_HORIZON", "12")
    s = load_settings()
    assert (s.home, s.backend, s.project, s.bucket, s.horizon) == (
        tmp_path,
        "gcp",
        "my-project-1",
        "my-bucket",
        12,
    )


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("AIRCAST_BACKEND", "azure", "AIRCAST_BACKEND"),
        ("AIRCAST_HORIZON", "zero", "AIRCAST_HORIZON"),
        ("AIRCAST_HORIZON", "0", "AIRCAST_HORIZON"),
        ("AIRCAST_DATASET", "air-cast; drop", "AIRCAST_DATASET"),
        ("AIRCAST_TARGET", "pm25", "AIRCAST_TARGET"),
        ("GOOGLE_CLOUD_PROJECT", "Not A Project", "GOOGLE_CLOUD_PROJECT"),
        ("AIRCAST_BUCKET", "UPPER", "AIRCAST_BUCKET"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, var, value, named):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_gcp_backend_needs_project_and_bucket(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("AIRCAST_BUCKET", raising=False)
    monkeypatch.setenv("AIRCAST_BACKEND", "gcp")
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT and AIRCAST_BUCKET"):
        load_settings()
