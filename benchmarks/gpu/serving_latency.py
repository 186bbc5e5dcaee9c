"""Serving latency at real size on one GPU: one request at 512 px / 25 steps, with and without
an adapter switch.

The serving engine holds the SD 1.5 folder written by `tuneforge assets sd15-random` (fp16
on the GPU) and one adapter slot (`adapter_lru_size=1`). "same" requests all use adapter A
(no switch after the first); "switch" requests alternate A and B, so each one swaps the
adapter in (staging and conversion included). Each request is timed from the outside
(`engine.generate` wall time); the medians are reported after one warm-up request per side.

    python benchmarks/gpu/serving_latency.py --model DIR

Last line: `latency_s=<same adapter> latency_switch_s=<alternating adapters>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _lora_files import write_lora  # noqa: E402  (the benchmarks' seeded LoRA writer)

RANK = 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="SD 1.5 diffusers folder")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--requests", type=int, default=4, help="measured requests per side")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("serving_latency.py needs a CUDA device")
    from diffusers import UNet2DConditionModel

    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine
    from tuneforge_serving.folder_source import FolderAdapterSource
    from tuneforge_serving.jobs import GenerationJob

    with tempfile.TemporaryDirectory(prefix="tf-gpu-serve-") as tmp:
        workdir = Path(tmp)
        unet = UNet2DConditionModel.from_pretrained(str(args.model), subfolder="unet")
        source = FolderAdapterSource()
        for index, name in enumerate(("a", "b")):
            source.add(name, write_lora(unet, workdir / name, 100 + index, RANK))
        del unet
        config = ServingConfig(
            base_model=str(args.model),
            cache_dir=workdir / "cache",
            device="cuda",
            adapter_lru_size=1,
            hotswap={"max_lora_rank": RANK},
        )
        engine = ServingEngine(config, source)

        def timed(name: str) -> float:
            job = GenerationJob(
                prompt="a photo of sks toy",
                adapters=[(source.resolve(name), 1.0)],
                steps=args.steps,
                width=args.size,
                height=args.size,
                seed=0,
            )
            started = time.perf_counter()
            output = engine.generate(job)
            torch.cuda.synchronize()
            if output.error:
                raise RuntimeError(f"generation failed: {output.error}")
            return time.perf_counter() - started

        timed("a")  # warm-up: kernels, the first adapter load
        same = [timed("a") for _ in range(args.requests)]
        timed("b")
        switch = [timed("a" if i % 2 == 0 else "b") for i in range(args.requests)]
        print(f"same: {same}\nswitch: {switch}")
        print(
            f"latency_s={statistics.median(same):.3f} "
            f"latency_switch_s={statistics.median(switch):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
