"""Build hook: wheels and sdists carry the package's SQL (the sqitch project).

The sqitch project (sqitch.plan, sqitch.conf, deploy/, revert/, verify/ and the release
records in releases/) stays at the top of the repository, its one source in git. At build
time it is copied into ``autodoctor_db/sqitch/`` inside the build tree only, where
``autodoctor_db.schema.project_dir()`` finds it after installation. MANIFEST.in puts the
same files into the sdist, so a wheel built from the sdist carries them too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FILES = ("sqitch.plan", "sqitch.conf")
FOLDERS = ("deploy", "revert", "verify", "releases")


class build_py_with_sql(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's own files
        target = Path(self.build_lib) / "autodoctor_db" / "sqitch"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in FILES:
            shutil.copy2(ROOT / name, target / name)
        for name in FOLDERS:
            shutil.copytree(ROOT / name, target / name)


setup(cmdclass={"build_py": build_py_with_sql})
