"""The environment embedded mode gives its trainer and serving processes follows the settings.

A process whose settings say "no Ray address" (start a local Ray) must not pass on a
`RAY_ADDRESS` it inherited: the child would join that cluster instead (found when a test's
session-wide Ray address reached an embedded job started with `ray_address=None`).
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.embedded.environment import child_environment
from tuneforge.settings import Settings

INHERITED = {"RAY_ADDRESS": "127.0.0.1:6379", "TUNEFORGE_RAY_ADDRESS": "127.0.0.1:6379"}


def test_no_ray_address_in_the_settings_removes_an_inherited_one(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, backend="local", ray_address=None)
    env = child_environment(settings, base={**INHERITED, "PATH": "/usr/bin"})
    assert "RAY_ADDRESS" not in env and "TUNEFORGE_RAY_ADDRESS" not in env
    assert env["TUNEFORGE_HOME"] == str(tmp_path)


def test_a_ray_address_in_the_settings_is_the_one_passed_on(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, backend="local", ray_address="10.0.0.5:6379")
    env = child_environment(settings, base={"PATH": "/usr/bin"})
    assert env["TUNEFORGE_RAY_ADDRESS"] == "10.0.0.5:6379"
