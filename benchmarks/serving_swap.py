"""Serving: adapter switch time and HTTP overhead, each against its baseline in one run.

1. Switch time. Ten LoRA adapters (ranks 2/4/8) of the tiny SD-1.5-shaped model in
   folders on disk; each switch is timed here around one call, staging and conversion
   included. tuneforge: `ServingEngine.switch` with 3 slots and 3 adapters staged in host
   memory, so nearly every switch reads the adapter from the disk cache, converts and
   checks it, and copies it into an evicted slot (rank zero-padded to the slot rank).
   Baseline, the fastest switch diffusers offers: `enable_lora_hotswap(target_rank=8)`
   before the first load, then `load_lora_weights(<folder>, adapter_name="default",
   hotswap=True)` per switch, for the same adapters in the same process. Medians.
2. Overhead. `POST /v1/generate` (no adapter, JSON answer) on the Serve application
   (`build_app`, one model replica, one ingress) against a direct call of a plain
   `StableDiffusionPipeline` in this process, same steps/size/seed, alternated; medians.

Last line: `swap_ratio=<tuneforge / diffusers> overhead_ratio=<HTTP / direct>`
(targets <= 0.1 and <= 1.05). Run in the private network namespace (it starts Ray):

    scripts/netns-run .venv/bin/python benchmarks/serving_swap.py --quick      # < 50 s
    scripts/netns-run .venv/bin/python benchmarks/serving_swap.py --switches 200 --requests 9
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402

from tuneforge.contract import ADAPTER_MANIFEST, AdapterManifest  # noqa: E402
from tuneforge.registry import FetchedAdapter  # noqa: E402
from tuneforge_serving.folder_source import FolderAdapterSource  # noqa: E402

NUM_ADAPTERS = 10
BEGAN = time.perf_counter()


def make_adapters(model_dir: Path, root: Path) -> list[Path]:
    """Ten seeded random LoRA folders (ranks 2, 4, 8) for the tiny model."""
    from _lora_files import write_lora
    from diffusers import UNet2DConditionModel

    from tuneforge.base_fingerprint import base_model_fingerprint

    unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet")
    fingerprint = base_model_fingerprint(model_dir)
    return [
        write_lora(
            unet,
            root / f"lora{i}",
            seed=i,
            rank=(2, 4, 8)[i % 3],
            base_model=str(model_dir),
            fingerprint=fingerprint,
        )
        for i in range(NUM_ADAPTERS)
    ]


class DiskCachedFolderSource(FolderAdapterSource):
    """A folder source that copies each version into the disk cache once, as the registry's
    fetch does (`FolderAdapterSource` copies on every fetch)."""

    def fetch(self, resolved: Any, cache_dir: Path) -> Any:
        """The cached copy of the version's folder (copied on first use)."""
        target = Path(cache_dir) / resolved.name / str(resolved.version)
        if not (target / ADAPTER_MANIFEST).is_file():
            return super().fetch(resolved, cache_dir)
        manifest = AdapterManifest.model_validate_json((target / ADAPTER_MANIFEST).read_text())
        return FetchedAdapter(target, manifest, resolved.name, resolved.version)


def tuneforge_switch_s(model_dir: Path, folders: list[Path], switches: int, cache: Path) -> float:
    """Median seconds per `ServingEngine.switch` call, timed here: 3 slots and 3 staged
    adapters over ten, so nearly every switch stages from the disk cache (parse, convert,
    check) and copies into an evicted slot."""
    from tuneforge_serving.config import ServingConfig
    from tuneforge_serving.engine import ServingEngine

    source = DiskCachedFolderSource()
    for index, folder in enumerate(folders):
        source.add(f"lora{index}", folder)
    config = ServingConfig(
        base_model=str(model_dir),
        cache_dir=cache,
        adapter_lru_size=3,
        host_cache_size=3,
        hotswap={"max_lora_rank": 8},
    )
    engine = ServingEngine(config, source)
    resolved = [source.resolve(f"lora{i}") for i in range(NUM_ADAPTERS)]
    times = []
    for switch in range(switches + NUM_ADAPTERS):  # the first round fetches into the cache
        start = time.perf_counter()
        engine.switch([(resolved[switch % NUM_ADAPTERS], 1.0)])
        times.append(time.perf_counter() - start)
    return statistics.median(times[NUM_ADAPTERS:])


def diffusers_switch_s(model_dir: Path, folders: list[Path], switches: int) -> float:
    """Median seconds per diffusers hot swap: `enable_lora_hotswap(target_rank=8)` once, then
    `load_lora_weights(<folder>, adapter_name="default", hotswap=True)`, timed here."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), safety_checker=None)
    pipe.enable_lora_hotswap(target_rank=8)
    pipe.load_lora_weights(str(folders[0]), adapter_name="default")
    times = []
    for switch in range(1, switches + NUM_ADAPTERS + 1):  # the first round warms the page cache
        start = time.perf_counter()
        pipe.load_lora_weights(
            str(folders[switch % NUM_ADAPTERS]), adapter_name="default", hotswap=True
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times[NUM_ADAPTERS:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(model_dir: Path, cache: Path) -> tuple[int, threading.Thread]:
    """Start Ray and the Serve app in the background (replicas load while swaps are timed)."""
    import ray
    from ray import serve

    from tuneforge_serving.app import build_app

    temp = Path(tempfile.mkdtemp(prefix="tfbench-", dir="/tmp"))
    env = {"OMP_NUM_THREADS": "1", "TUNEFORGE_HOME": str(cache / "home")}
    os.environ.update(env)
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=4,
        include_dashboard=False,
        _temp_dir=str(temp),
        object_store_memory=128 * 2**20,
        runtime_env={"env_vars": env},
        log_to_driver=False,
    )
    port = _free_port()
    args = {"baseModel": str(model_dir), "cacheDir": str(cache), "auth": {"tokenEnv": None}}

    def serve_app() -> None:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name="bench", route_prefix="/")

    thread = threading.Thread(target=serve_app)
    thread.start()
    return port, thread


def overhead(
    model_dir: Path, port: int, started: threading.Thread, requests: int, steps: int, size: int
) -> tuple[float, float, float]:
    """Medians (alternated): HTTP generate, the pipeline time inside the replica, direct call."""
    import httpx
    import ray
    from diffusers import StableDiffusionPipeline

    started.join()
    print(f"[{time.perf_counter() - BEGAN:5.1f} s] Serve app running", file=sys.stderr, flush=True)
    try:
        url = f"http://127.0.0.1:{port}/v1/generate"
        body = {
            "prompt": "a photo of a cat",
            "steps": steps,
            "width": size,
            "height": size,
            "seed": 3,
        }
        pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), safety_checker=None)
        pipe.set_progress_bar_config(disable=True)

        def direct() -> float:
            start = time.perf_counter()
            pipe(
                prompt="a photo of a cat",
                num_inference_steps=steps,
                width=size,
                height=size,
                generator=torch.Generator().manual_seed(3),
                output_type="np",
            )
            return time.perf_counter() - start

        def http(client: httpx.Client) -> tuple[float, float]:
            start = time.perf_counter()
            answer = client.post(url, json=body)  # JSON: also reports the replica's timings
            answer.raise_for_status()
            return time.perf_counter() - start, answer.json()["timings"]["inferenceMs"] / 1e3

        with httpx.Client(timeout=300) as client:
            http(client)  # warm-up both paths
            direct()
            runs = [(*http(client), direct()) for _ in range(requests)]
        return tuple(statistics.median(run[i] for run in runs) for i in range(3))  # type: ignore[return-value]
    finally:
        ray.shutdown()  # stops the local cluster this run started, Serve included


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (under 50 s)")
    parser.add_argument("--switches", type=int, default=100)
    parser.add_argument("--diffusers-switches", type=int, default=20)
    parser.add_argument("--requests", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    if args.quick:
        args.switches, args.diffusers_switches, args.requests = 30, 5, 3
        args.steps, args.size = 10, 128
    torch.set_num_threads(1)
    from tuneforge.assets.cache import cached_tiny_model

    model_dir = cached_tiny_model(seed=0)
    print("[  0.0 s] starting Ray", file=sys.stderr, flush=True)
    began = BEGAN

    def phase(name: str) -> None:
        print(f"[{time.perf_counter() - began:5.1f} s] {name}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="serving-swap-") as tmp:
        root = Path(tmp)
        port, started = start_app(model_dir, root / "cache")
        phase("Ray and the Serve app starting")
        folders = make_adapters(model_dir, root / "adapters")
        phase("adapters written")
        ours = tuneforge_switch_s(model_dir, folders, args.switches, root / "cache")
        phase("tuneforge switches timed")
        theirs = diffusers_switch_s(model_dir, folders, args.diffusers_switches)
        phase("diffusers switches timed")
        print(
            f"switch: tuneforge {ours * 1e3:.2f} ms, "
            f"diffusers hotswap load_lora_weights {theirs * 1e3:.1f} ms"
        )
        http_s, replica_s, direct_s = overhead(
            model_dir, port, started, args.requests, args.steps, args.size
        )
        print(
            f"generate {args.size}x{args.size}, {args.steps} steps: HTTP {http_s * 1e3:.0f} ms "
            f"(pipeline inside the replica {replica_s * 1e3:.0f} ms), "
            f"direct pipeline {direct_s * 1e3:.0f} ms"
        )
    print(f"swap_ratio={ours / theirs:.4f} overhead_ratio={http_s / direct_s:.3f}")


if __name__ == "__main__":
    main()
