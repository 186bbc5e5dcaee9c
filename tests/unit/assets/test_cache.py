"""The per-user asset cache: reuse, concurrent builders, debris, and a light import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.assets import build_tiny_dataset, tiny_dataset_info
from tuneforge.assets.cache import CACHE_ENV, assets_cache_dir, cached_tiny_dataset
from tuneforge.assets.fs import publish_dir, staging_dir

_BUILD_SCRIPT = """
import sys
from pathlib import Path
from tuneforge.assets.cache import cached_tiny_dataset
print(cached_tiny_dataset(resolution=16, num_instance=2, num_class=1, cache_dir=Path(sys.argv[1])))
"""


def test_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "override"))
    assert assets_cache_dir() == tmp_path / "override"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert assets_cache_dir() == tmp_path / "xdg" / "tuneforge" / "assets"


def test_second_call_reuses_the_folder(tmp_path: Path) -> None:
    first = cached_tiny_dataset(resolution=16, num_instance=1, num_class=0, cache_dir=tmp_path)
    png = first / "instance" / "instance-000.png"
    before = png.stat().st_mtime_ns
    second = cached_tiny_dataset(resolution=16, num_instance=1, num_class=0, cache_dir=tmp_path)
    assert second == first == tmp_path / "tiny-dataset-v1-r16-i1-c0-seed0"
    assert png.stat().st_mtime_ns == before


def test_debris_without_a_marker_is_replaced(tmp_path: Path) -> None:
    debris = tmp_path / "tiny-dataset-v1-r16-i1-c0-seed0"
    (debris / "instance").mkdir(parents=True)
    (debris / "instance" / "half-written.png").write_bytes(b"")
    built = cached_tiny_dataset(resolution=16, num_instance=1, num_class=0, cache_dir=tmp_path)
    assert tiny_dataset_info(built) is not None
    assert not (built / "instance" / "half-written.png").exists()


def test_concurrent_builders_agree_on_one_folder(tmp_path: Path) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_SCRIPT, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    assert {stdout.strip() for stdout, _ in outputs} == {
        str(tmp_path / "tiny-dataset-v1-r16-i2-c1-seed0")
    }
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-dataset-v1-r16-i2-c1-seed0"]
    assert len(list((tmp_path / "tiny-dataset-v1-r16-i2-c1-seed0" / "instance").glob("*"))) == 4


def test_importing_the_package_does_not_import_torch() -> None:
    probe = (
        "import sys, tuneforge, tuneforge.assets, tuneforge.cli.main\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'numpy', 'PIL') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""


def test_losing_a_publish_race_keeps_the_winner_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    with staging_dir(target, overwrite=False) as staging:
        (staging / "ours.txt").write_text("loser")
        winner = build_tiny_dataset(target, resolution=16, num_instance=1, num_class=0)
        with pytest.raises(FileExistsError, match="someone else"):
            publish_dir(staging, target, overwrite=False)
    assert not staging.exists()
    assert tiny_dataset_info(winner) is not None and not (winner / "ours.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]
