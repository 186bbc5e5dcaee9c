"""Fixtures of the real-size tier: SD 1.5's architecture with random weights, trained and served.

- `sd15_random` (session): the model as a diffusers folder and as one original-layout
  `.safetensors` checkpoint, built once by `tuneforge assets sd15-random` (a subprocess, so
  this process never holds the build's memory) into the assets cache and reused by later
  runs. Read-only.
- `trained` (session): a LoRA job and a textual-inversion job on the single file, each a
  real `tuneforge run` (embedded mode: local Ray, SQLite MLflow), one after the other.
- `served` (session): the serving engine on the single file renders the base, the LoRA and
  the embedding, then is freed; `reference` (session): plain diffusers does the same on the
  diffusers folder with `load_lora_weights` / `load_textual_inversion`.

One real-size process at a time: the jobs run one after the other, and serving and the
diffusers reference load only after training has finished, each freed before the next.
Run inside scripts/netns-run (Ray starts).
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.realsize.rss import PeakRss, peak_rss
from tuneforge.settings import Settings
from tuneforge_trainer.strategies.precision import cpu_has_native_bf16

TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")
NATIVE_BF16 = cpu_has_native_bf16()
RESOLUTION = 256 if NATIVE_BF16 else 64
"""Training and rendering size: 256 px (latents 32x32) where the CPU has bf16 kernels.

Without them (AVX2-only CPUs, like the 2-core development machine) torch runs bf16 matmuls
and convolutions through scalar fallbacks: measured 50-125x slower than fp32 per op, a
real-size LoRA step at 256 px took 484 s. The bf16 job then trains at 64 px (latents 8x8,
16x less work per step) so the tier keeps bf16 at real size within its budget; the
precision, the architecture and every code path are the same, only the image is smaller.
"""
RENDER = {"steps": 2, "guidance_scale": 7.5, "seed": 3, "width": RESOLUTION, "height": RESOLUTION}
"""What every served and reference image uses."""
JOB_TIMEOUT_S = 900
"""Limit of one `tuneforge run` (Ray start, loading 4 GB, 2 steps on 2 busy cores)."""
LORA_MODEL, TI_MODEL = "sd15-lora", "sd15-ti"
TOKEN = "<sks-toy>"
PROMPT = f"a photo of {TOKEN}"


@dataclass(frozen=True)
class Sd15Random:
    """The real-size random model in both forms (same weights)."""

    folder: Path
    single_file: Path


@dataclass
class JobRun:
    """One finished `tuneforge run`: exit status, output (stdout and stderr), memory taken."""

    returncode: int
    output: str
    peak: PeakRss
    seconds: float


@dataclass
class Trained:
    """The two jobs' runs and the state directory they registered into."""

    home: Path
    runs: dict[str, JobRun] = field(default_factory=dict)

    def settings(self) -> Settings:
        """Settings of the embedded registry the jobs used."""
        return Settings(home=self.home, backend="local", mlflow_tracking_uri=None, ray_address=None)


@dataclass
class Rendered:
    """Images (float arrays in [0, 1]) by adapter choice, and the memory it took."""

    images: dict[str, Any]
    peak: PeakRss
    seconds: float


@pytest.fixture(scope="session")
def sd15_random() -> Sd15Random:
    """SD 1.5's architecture with seed-0 random weights, in the assets cache (built once)."""
    from tuneforge.assets.sd15 import CONFIG_VERSION
    from tuneforge.assets.sd15_random import SD15_RANDOM_MARKER

    cache = Settings().assets_cache_dir()
    folder = cache / f"sd15-random-v{CONFIG_VERSION}-seed0"
    single_file = cache / f"sd15-random-v{CONFIG_VERSION}-seed0.safetensors"
    if not ((folder / SD15_RANDOM_MARKER).is_file() and single_file.is_file()):
        command = [TUNEFORGE, "assets", "sd15-random", str(folder), "--single-file"]
        command += [str(single_file), "--seed", "0", "--force"]
        with peak_rss() as peak:
            build = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert build.returncode == 0, build.stdout + build.stderr
        print("\n" + peak.line("building the real-size model"))
    return Sd15Random(folder, single_file)


@pytest.fixture(scope="session")
def realsize_dataset() -> Path:
    """Two 256-px instance images (and one class image), cached like the tiny dataset."""
    from tuneforge.assets.cache import cached_tiny_dataset

    return cached_tiny_dataset(resolution=RESOLUTION, num_instance=2, num_class=1)


LORA_PRECISION, TI_PRECISION = "bf16", "no"
"""The LoRA job autocasts in bf16 (the GPU default of most users); the textual-inversion job
trains in fp32, so both precisions run at real size."""


def _manifest(job: Any, precision: str) -> dict[str, Any]:
    """The job as YAML data, with the real-size training settings of this tier."""
    manifest: dict[str, Any] = job.to_manifest()
    training = manifest["spec"].setdefault("training", {})
    training.update({"mixedPrecision": precision, "gradientCheckpointing": True})
    return manifest


def _run(home: Path, name: str, manifest: dict[str, Any]) -> JobRun:
    job_file = home.parent / f"{name}.yaml"
    job_file.write_text(yaml.safe_dump(manifest))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TUNEFORGE_", "MLFLOW_TRACKING"))
    }
    env.update({"TUNEFORGE_HOME": str(home), "COLUMNS": "120"})
    log = home.parent / f"{name}.log"  # on disk, so a timed-out job still shows its output
    started = time.monotonic()
    with log.open("w") as out, peak_rss() as peak:
        process = subprocess.Popen(
            [TUNEFORGE, "run", str(job_file)], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            returncode = process.wait(timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_tree(process.pid)
            message = f"{name} job over {JOB_TIMEOUT_S} s: {log.read_text()[-4000:]}"
            raise AssertionError(message) from None
    return JobRun(returncode, log.read_text(), peak, time.monotonic() - started)


def _kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process under it (the trainer, Ray and its actors)."""
    import psutil

    root = psutil.Process(pid)
    for process in [*root.children(recursive=True), root]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.fixture(scope="session")
def trained(
    sd15_random: Sd15Random, realsize_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    """A rank-16 LoRA job and a textual-inversion job, 2 steps each, on the single file."""
    from tuneforge.client import cpu_resources, lora_job, textual_inversion_job

    home = tmp_path_factory.mktemp("realsize") / "home"
    common: dict[str, Any] = {
        "dataset": realsize_dataset,
        "base_model": sd15_random.single_file,
        "steps": 2,
        "batch_size": 1,
        "resolution": RESOLUTION,
        "resources": cpu_resources(cpus_per_worker=2),
    }
    lora = lora_job(
        "realsize-lora",
        instance_prompt=PROMPT,
        registered_model=LORA_MODEL,
        rank=16,
        learning_rate=5e-3,
        **common,
    )
    ti = textual_inversion_job(
        "realsize-ti",
        placeholder_token=TOKEN,
        initializer_token="ball",
        instance_prompt=PROMPT,
        registered_model=TI_MODEL,
        learning_rate=5e-2,
        **common,
    )
    result = Trained(home)
    print(
        f"\nreal-size jobs at {RESOLUTION} px "
        f"({'native' if NATIVE_BF16 else 'no native'} bf16 kernels on this CPU)"
    )
    for name, job, precision in (("lora", lora, LORA_PRECISION), ("ti", ti, TI_PRECISION)):
        result.runs[name] = _run(home, name, _manifest(job, precision))
    return result


def _pixels(png: bytes) -> Any:
    from tests.fixtures.serving import png_pixels

    return png_pixels(png)


@pytest.fixture(scope="session")
def served(
    sd15_random: Sd15Random, trained: Trained, tmp_path_factory: pytest.TempPathFactory
) -> Rendered:
    """The serving engine on the single file: base, LoRA (hot-swapped in), embedding."""
    from tuneforge.contract import AdapterRef
    from tuneforge.registry import AdapterRegistry
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine
    from tuneforge_serving.jobs import GenerationJob

    registry = AdapterRegistry(trained.settings())
    lora = registry.resolve(AdapterRef.of(LORA_MODEL, 1))
    ti = registry.resolve(AdapterRef.of(TI_MODEL, 1))
    config = ServingConfig(
        base_model=str(sd15_random.single_file),
        cache_dir=tmp_path_factory.mktemp("serving-cache"),
        adapter_lru_size=2,
        hotswap={"max_lora_rank": 16},
    )
    images: dict[str, Any] = {}
    started = time.monotonic()
    with peak_rss() as peak:
        engine = ServingEngine(config, registry)
        for key, adapters in (("base", []), ("lora", [(lora, 1.0)]), ("ti", [(ti, 1.0)])):
            output = engine.generate(GenerationJob(prompt=PROMPT, adapters=adapters, **RENDER))
            assert output.error is None, output.error
            images[key] = _pixels(output.images[0])
        del engine
        gc.collect()
    return Rendered(images, peak, time.monotonic() - started)


@pytest.fixture(scope="session")
def reference(
    sd15_random: Sd15Random,
    trained: Trained,
    served: Rendered,
    tmp_path_factory: pytest.TempPathFactory,
) -> Rendered:
    """Plain diffusers on the diffusers folder: the same three images, its own loaders."""
    import torch
    from diffusers import StableDiffusionPipeline

    from tuneforge.contract import LORA_WEIGHTS, TI_EMBEDDINGS, AdapterRef
    from tuneforge.registry import AdapterRegistry

    del served  # rendered first: never two real-size pipelines at once
    registry = AdapterRegistry(trained.settings())
    fetched = {
        key: registry.fetch(
            registry.resolve(AdapterRef.of(model, 1)), tmp_path_factory.mktemp(f"fetch-{key}")
        ).path
        for key, model in (("lora", LORA_MODEL), ("ti", TI_MODEL))
    }

    def render(pipe: Any) -> Any:
        return pipe(
            prompt=[PROMPT],
            negative_prompt=[""],
            num_inference_steps=RENDER["steps"],
            guidance_scale=RENDER["guidance_scale"],
            width=RESOLUTION,
            height=RESOLUTION,
            generator=[torch.Generator("cpu").manual_seed(RENDER["seed"])],
            output_type="np",
        ).images[0]

    images: dict[str, Any] = {}
    started = time.monotonic()
    with peak_rss() as peak:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(sd15_random.folder), safety_checker=None, use_safetensors=True
        )
        pipe.set_progress_bar_config(disable=True)
        images["base"] = render(pipe)
        pipe.load_lora_weights(str(fetched["lora"] / LORA_WEIGHTS))
        images["lora"] = render(pipe)
        pipe.unload_lora_weights()
        pipe.load_textual_inversion(str(fetched["ti"] / TI_EMBEDDINGS))
        images["ti"] = render(pipe)
        del pipe
        gc.collect()
    return Rendered(images, peak, time.monotonic() - started)
