"""The seed recipes and the benchmark's arms read ../shared/data and the English prose of two
Debian packages (fortunes, debian-handbook; .ci/run installs them): without them these tests skip."""

from __future__ import annotations

from pathlib import Path

import pytest

PROSE = [Path("/usr/share/games/fortunes"), Path("/usr/share/doc/debian-handbook/html/en-US")]


@pytest.fixture(autouse=True)
def _needs_data(shared_data, repo_root, monkeypatch):
    missing = [str(p) for p in PROSE if not p.is_dir()]
    if missing:
        pytest.skip(f"English prose packages absent: {', '.join(missing)} (apt-get install fortunes debian-handbook)")
    if shared_data.resolve() != (repo_root.parent / "shared" / "data").resolve():
        pytest.skip("the seed recipes read ../shared/data relative to the repository")
    monkeypatch.chdir(repo_root)
