"""Atomic writes: the target is either the old file or the complete new one, never half-written."""

import json

import pytest

from llmplan.errors import LlmplanError
from llmplan.report.files import atomic_target, write_json, write_text


def test_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "law.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["law.json"]


def test_failure_midway_keeps_the_old_file(tmp_path):
    target = tmp_path / "runs.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_target(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_nan_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"E": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_user_error_when_not_created(tmp_path):
    with pytest.raises(LlmplanError, match="does not exist"):
        write_text(tmp_path / "absent" / "x.txt", "x", create_folder=False)


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        target = write_text(tmp_path / "profile.json", "{}")
    finally:
        os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o644
