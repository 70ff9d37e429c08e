"""Build the sdist and the wheel as a release would, from a copy of the source tree.

``python -m build`` writes ``build/`` and ``*.egg-info`` next to ``pyproject.toml``; building
from a copy keeps the worktree clean and lets two tests build at once. The copy holds the files
git knows, tracked or new (not ignored), so it matches what a commit would ship.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 300


@dataclass(frozen=True)
class Distributions:
    sdist: Path
    wheel: Path
    output: str  # what the build printed, stdout and stderr

    def sdist_members(self) -> set[str]:
        """The sdist's files, relative to its top folder (``bettorsense-X.Y.Z/``)."""
        with tarfile.open(self.sdist) as archive:
            names = [member.name for member in archive.getmembers() if member.isfile()]
        return {name.split("/", 1)[1] for name in names}

    def wheel_members(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return set(archive.namelist())

    def wheel_metadata(self) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            return archive.read(name).decode()


def source_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


def build_distributions(workdir: Path) -> Distributions:
    """Copy the source tree into ``workdir/src`` and build both distributions into ``workdir/dist``."""
    source, dist = workdir / "src", workdir / "dist"
    for name in source_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    # The default build makes the sdist, then the wheel from the unpacked sdist: the sdist is proven
    # to be buildable on its own.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return Distributions(sdist=sdist, wheel=wheel, output=output)
