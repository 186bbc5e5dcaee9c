"""The UNet's module names come from a file after the first build (no diffusers import).

The trainer's driver checks `lora.targetModules` against the UNet's module tree at preflight;
building that tree imports diffusers (4 s here) in a process that needs nothing else from
it. `unet_module_names` keeps the answer under a key of the UNet config's bytes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tuneforge_trainer.components import unet_module_names

PROBE = """
import sys
from pathlib import Path
from tuneforge_trainer.components import unet_module_names
names = unet_module_names(Path(sys.argv[1]), Path(sys.argv[2]))
print(len(names), names["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"],
      "diffusers" in sys.modules)
"""


def _probe(model: Path, cache: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(model), str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_second_process_reads_the_names_without_importing_diffusers(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "unet-modules"
    count, kind, imported = _probe(tiny_model_dir, cache).split()
    assert kind == "Linear" and imported == "True" and int(count) > 100
    assert len(list(cache.glob("*.json"))) == 1
    assert _probe(tiny_model_dir, cache).split() == [count, "Linear", "False"]


def test_another_config_gets_its_own_answer_and_a_broken_file_is_rebuilt(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "unet-modules"
    names = unet_module_names(tiny_model_dir, cache)
    (stored,) = cache.glob("*.json")
    stored.write_text("{not json")
    assert unet_module_names(tiny_model_dir, cache) == names
    assert json.loads(stored.read_text()) == names
    other = tmp_path / "other-model"
    shutil.copytree(
        tiny_model_dir / "unet", other / "unet", ignore=shutil.ignore_patterns("*.safetensors")
    )
    config = json.loads((other / "unet" / "config.json").read_text())
    config["layers_per_block"] = 1
    (other / "unet" / "config.json").write_text(json.dumps(config))
    fewer = unet_module_names(other, cache)
    assert len(list(cache.glob("*.json"))) == 2
    assert "down_blocks.0.resnets.1.conv1" in names and "down_blocks.0.resnets.1.conv1" not in fewer
