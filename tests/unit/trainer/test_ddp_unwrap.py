"""DDP's unwrapped model, without importing DeepSpeed.

accelerate's `unwrap_model` imports DeepSpeed whenever it is installed (to test for its
engine): 3 s of CPU and a "Setting accelerator to CPU" warning in every DDP job's log, at the
first checkpoint. The DDP strategy unwraps torch's wrapper itself; a fresh interpreter shows
DeepSpeed stays unimported through setup and unwrapping.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, torch
from torch import nn
from tuneforge.api.spec import TrainingSpec
from tuneforge_trainer.strategies.base import World
from tuneforge_trainer.strategies.ddp import DdpStrategy

strategy = DdpStrategy(World(), TrainingSpec())
model = nn.Linear(4, 4)
strategy.setup(model, ["weight", "bias"], lambda params: torch.optim.AdamW(params))
print(strategy.unwrapped() is model, "deepspeed" in sys.modules)
"""


def test_ddp_unwraps_its_model_without_importing_deepspeed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.split()[-2:] == ["True", "False"], done.stdout + done.stderr
