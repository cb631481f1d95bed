#!/usr/bin/env python3
# Run it with the virtualenv (it imports autodoctor_db): .venv/bin/python scripts/release.py
"""Released sqitch changes and the files sqitch uses for them.

A change listed before a tag in sqitch.plan is released: the deploy, revert and verify
files sqitch uses for it must never change again. When a release is tagged, this script
records their SHA-256 in releases/<tag>.sha256 (sha256sum's format, paths as they were at
the tag); `check` compares today's files with it. After `sqitch rework NAME`, sqitch uses
NAME@<tag>.sql for the released instance, and that copy must still hold the same bytes.

    .venv/bin/python scripts/release.py manifest TAG   # once, right after `sqitch tag TAG`
    .venv/bin/python scripts/release.py check          # what `make test` checks
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from autodoctor_db.schema import KINDS, plan  # noqa: E402  (one parser of sqitch.plan)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(tag: str, root: Path = ROOT) -> Path:
    """Write releases/<tag>.sha256 for the changes released by ``tag``."""
    instances, tags = plan(root)
    if tag not in tags:
        raise SystemExit(f"release: sqitch.plan has no tag @{tag} (run `sqitch tag {tag}` first)")
    out = root / "releases" / f"{tag}.sha256"
    if out.exists():
        raise SystemExit(f"release: {out.relative_to(root)} exists; a release is recorded once")
    lines = []
    for inst in instances:
        if inst.tag != tag:
            continue
        for kind in KINDS:
            path = f"{kind}/{inst.name}.sql"
            lines.append(f"{_sha256(root / inst.path(kind))}  {path}")
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def check(root: Path = ROOT) -> list[str]:
    """Every released file that differs from its release, or whose release is unrecorded."""
    instances, tags = plan(root)
    problems = []
    recorded: dict[str, dict[str, str]] = {}
    for tag in tags:
        file = root / "releases" / f"{tag}.sha256"
        if not file.exists():
            problems.append(f"releases/{tag}.sha256 is missing: record @{tag} (scripts/release.py)")
            continue
        recorded[tag] = {
            path: digest
            for digest, path in (line.split("  ", 1) for line in file.read_text().splitlines())
        }
    for inst in instances:
        if inst.tag is None or inst.tag not in recorded:
            continue  # not released yet, or reported above
        for kind in KINDS:
            at_tag = f"{kind}/{inst.name}.sql"
            expected = recorded[inst.tag].get(at_tag)
            used = root / inst.path(kind)
            if expected is None:
                problems.append(f"{at_tag}: released at @{inst.tag} but not in its record")
            elif not used.exists():
                problems.append(f"{inst.path(kind)}: released at @{inst.tag}, file missing")
            elif _sha256(used) != expected:
                problems.append(
                    f"{inst.path(kind)}: differs from its release @{inst.tag}; released changes"
                    " are never edited: `sqitch rework` a function, add a change for a table"
                )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "manifest":
        print(f"release: wrote {manifest(argv[1]).relative_to(ROOT)}")
        return 0
    if argv == ["check"]:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
