"""Result quality after training (and at validation steps): the DreamBooth paper's DINO,
CLIP-I and CLIP-T, computed on the workers' devices with the modules they hold.

- `metrics`: the math on embeddings;
- `models`: the evaluator models by URI, and their embeddings;
- `grids`: one image grid per prompt ("before" row above this step's);
- `worker`: rendering, measuring and logging on a worker (`WorkerEvaluation`).
"""

from tuneforge_trainer.evaluation.metrics import prompt_fidelity, subject_fidelity
from tuneforge_trainer.evaluation.worker import WorkerEvaluation

__all__ = ["WorkerEvaluation", "prompt_fidelity", "subject_fidelity"]
