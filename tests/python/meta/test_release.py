"""Releases: a released sqitch change is never edited in place, and the version agrees.

A change listed before a tag in sqitch.plan is released. Its deploy, revert and verify
files (or, after a `sqitch rework`, the NAME@TAG.sql copies sqitch keeps for the released
instance) must hold exactly the bytes recorded in releases/TAG.sha256 when it was tagged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _release_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release", ROOT / "scripts" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["release"] = module
    spec.loader.exec_module(module)
    return module


release = _release_module()


def test_the_plan_has_a_release() -> None:
    _, tags = release.plan()
    assert "v0.1.0" in tags


def test_no_released_change_was_edited_in_place() -> None:
    assert release.check() == []


def test_the_version_is_the_latest_release() -> None:
    _, tags = release.plan()
    found = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found, "pyproject.toml has no version"
    version = found[1]
    assert f"v{version}" == tags[-1]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[?{re.escape(version)}\]?", changelog, flags=re.M), changelog[:400]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The sqitch project copied where it may be changed."""
    for name in ("sqitch.plan", "sqitch.conf"):
        shutil.copy2(ROOT / name, tmp_path / name)
    for folder in ("deploy", "revert", "verify", "releases"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_the_check_finds_an_edit_in_place(copy: Path) -> None:
    (copy / "deploy" / "expire_stale_requests.sql").write_text("-- edited in place\n")
    assert release.check(copy) == [
        "deploy/expire_stale_requests.sql: differs from its release @v0.1.0; released changes"
        " are never edited: `sqitch rework` a function, add a change for a table"
    ]


def test_the_check_accepts_a_rework_and_holds_its_copy(copy: Path) -> None:
    """As `sqitch rework` leaves it: the released files copied to NAME@TAG.sql, the plan
    naming the change again, today's files free to change."""
    if shutil.which("sqitch") is None:
        pytest.skip("sqitch is not installed")
    proc = subprocess.run(
        ["sqitch", "rework", "expire_stale_requests", "-n", "Test rework."],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (copy / "deploy" / "expire_stale_requests@v0.1.0.sql").exists()
    (copy / "deploy" / "expire_stale_requests.sql").write_text("-- the reworked function\n")
    assert release.check(copy) == []
    (copy / "revert" / "expire_stale_requests@v0.1.0.sql").write_text("-- edited\n")
    assert release.check(copy) == [
        "revert/expire_stale_requests@v0.1.0.sql: differs from its release @v0.1.0; released"
        " changes are never edited: `sqitch rework` a function, add a change for a table"
    ]


def test_the_record_matches_the_git_tag_where_the_clone_has_it() -> None:
    """The record itself was written at the tag: where git knows the tag, its files agree."""
    _, tags = release.plan()
    for tag in tags:
        if (
            shutil.which("git") is None
            or subprocess.run(
                ["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"],
                cwd=ROOT,
                capture_output=True,
                check=False,
            ).returncode
            != 0
        ):
            continue
        recorded = (ROOT / "releases" / f"{tag}.sha256").read_text()
        for line in recorded.splitlines():
            digest, path = line.split("  ", 1)
            blob = subprocess.run(
                ["git", "show", f"{tag}:{path}"], cwd=ROOT, capture_output=True, check=True
            ).stdout
            assert hashlib.sha256(blob).hexdigest() == digest, path
