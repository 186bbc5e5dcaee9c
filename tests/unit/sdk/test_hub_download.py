"""`hf://` downloads obey the download caps and the revision (tuneforge.hub_download).

The real `huggingface_hub` talks to a local stand-in of the Hub's read endpoints
(tests/unit/sdk/hub_standin.py, 127.0.0.1 only). HF_ENDPOINT is read when huggingface_hub is
imported, so each download runs in a child process that starts with HF_ENDPOINT pointing at
the stand-in: nothing can reach huggingface.co. The caps are set the way a pod sets them,
TUNEFORGE_DOWNLOAD_MAX_BYTES / TUNEFORGE_DOWNLOAD_MAX_OBJECTS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub.file_download import DryRunFileInfo
from safetensors.numpy import save

from tests.unit.sdk.hub_standin import HubStandin, StandinRepo, hub_standin
from tuneforge.base_model import hf_allow_patterns
from tuneforge.errors import StorageError
from tuneforge.hub_download import check_hub_download_caps
from tuneforge.settings import Settings

REPO_ID = "org/tiny-sd"
TAGGED_COMMIT = "1" * 40
MAIN_COMMIT = "2" * 40
CHILD_TIMEOUT_S = 120


def _weights(seed: int, size: int) -> bytes:
    rng = np.random.default_rng(seed)
    return save({"weight": rng.standard_normal(size).astype(np.float32)})


def _diffusers_repo(seed: int) -> dict[str, bytes]:
    """A tiny diffusers layout plus files the pipeline never loads (a pickle, a README)."""
    files = {
        "model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline", "seed": seed}),
        "scheduler/scheduler_config.json": json.dumps({"num_train_timesteps": 1000 + seed}),
        "tokenizer/vocab.json": json.dumps({"a": 0, "b": seed}),
        "README.md": "a model card" * 50,
    }
    encoded = {path: text.encode() for path, text in files.items()}
    for index, (component, stem) in enumerate(
        (
            ("unet", "diffusion_pytorch_model"),
            ("vae", "diffusion_pytorch_model"),
            ("text_encoder", "model"),
        )
    ):
        encoded[f"{component}/config.json"] = json.dumps(
            {"component": component, "seed": seed}
        ).encode()
        encoded[f"{component}/{stem}.safetensors"] = _weights(seed * 10 + index, 256)
    encoded["unet/diffusion_pytorch_model.bin"] = b"\x80\x04pickle" * 4000
    return encoded


TAGGED_FILES = _diffusers_repo(seed=1)
STANDIN_REPOS = {
    REPO_ID: StandinRepo(
        commits={TAGGED_COMMIT: TAGGED_FILES, MAIN_COMMIT: _diffusers_repo(seed=2)},
        refs={"v1": TAGGED_COMMIT, "main": MAIN_COMMIT},
    )
}


def _pipeline_files(files: dict[str, bytes]) -> dict[str, bytes]:
    from huggingface_hub.utils import filter_repo_objects

    kept = set(filter_repo_objects(files, allow_patterns=hf_allow_patterns()))
    return {path: content for path, content in files.items() if path in kept}


PIPELINE_FILES = _pipeline_files(TAGGED_FILES)
PIPELINE_BYTES = sum(len(content) for content in PIPELINE_FILES.values())

_CHILD = """
import json, sys
from pathlib import Path
from tuneforge.base_model import resolve_base_model
from tuneforge.settings import Settings
uri, cache, revision = sys.argv[1], Path(sys.argv[2]), sys.argv[3] or None
try:
    resolved = resolve_base_model(uri, cache, Settings(home=cache), revision=revision)
    print(json.dumps({"path": str(resolved.path)}))
except Exception as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
"""


def _resolve_in_child(
    hub: HubStandin, uri: str, cache: Path, *, revision: str = "", caps: dict[str, str]
) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HF_", "HUGGINGFACE_", "TUNEFORGE_"))
    }
    environment |= {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1",
        **caps,
    }
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, uri, str(cache), revision],
        env=environment,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def _snapshot_files(cache: Path) -> list[str]:
    return sorted(
        str(path.relative_to(cache))
        for path in cache.rglob("*")
        if path.is_file() and "snapshots" in path.parts
    )


def test_within_the_caps_the_listed_files_arrive_at_the_revision(tmp_path: Path) -> None:
    caps = {"TUNEFORGE_DOWNLOAD_MAX_BYTES": str(PIPELINE_BYTES)}  # exactly at the cap
    with hub_standin(STANDIN_REPOS) as hub:
        answer = _resolve_in_child(hub, f"hf://{REPO_ID}", tmp_path, revision="v1", caps=caps)
    assert "error" not in answer, answer
    folder = Path(answer["path"])
    assert folder.name == TAGGED_COMMIT, "baseModel.revision (v1) was not the commit fetched"
    arrived = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert arrived == set(PIPELINE_FILES), "only what the pipeline loads is fetched"
    for path, content in PIPELINE_FILES.items():
        assert (folder / path).read_bytes() == content
    fetched = hub.fetched_files()
    assert fetched and all(f"/resolve/{TAGGED_COMMIT}/" in path for path in fetched)
    assert not any(MAIN_COMMIT in path for _, path in hub.requests)


def test_over_the_byte_cap_nothing_is_fetched(tmp_path: Path) -> None:
    caps = {"TUNEFORGE_DOWNLOAD_MAX_BYTES": str(PIPELINE_BYTES - 1)}
    with hub_standin(STANDIN_REPOS) as hub:
        answer = _resolve_in_child(hub, f"hf://{REPO_ID}@v1", tmp_path, caps=caps)
    assert answer.get("error") == "StorageError", answer
    assert f"{PIPELINE_BYTES} bytes" in answer["message"]
    assert f"TUNEFORGE_DOWNLOAD_MAX_BYTES={PIPELINE_BYTES - 1}" in answer["message"]
    assert hub.fetched_files() == [], "a file was downloaded before the cap was checked"
    assert _snapshot_files(tmp_path) == []


def test_over_the_object_cap_nothing_is_fetched(tmp_path: Path) -> None:
    caps = {"TUNEFORGE_DOWNLOAD_MAX_OBJECTS": str(len(PIPELINE_FILES) - 1)}
    with hub_standin(STANDIN_REPOS) as hub:
        answer = _resolve_in_child(hub, f"hf://{REPO_ID}@v1", tmp_path, caps=caps)
    assert answer.get("error") == "StorageError", answer
    assert f"TUNEFORGE_DOWNLOAD_MAX_OBJECTS={len(PIPELINE_FILES) - 1}" in answer["message"]
    assert hub.fetched_files() == []


def test_a_single_file_checkpoint_is_capped_and_pinned(tmp_path: Path) -> None:
    checkpoint = "unet/diffusion_pytorch_model.safetensors"
    size = len(TAGGED_FILES[checkpoint])
    uri = f"hf://{REPO_ID}@v1/{checkpoint}"
    with hub_standin(STANDIN_REPOS) as hub:
        refused = _resolve_in_child(
            hub, uri, tmp_path, caps={"TUNEFORGE_DOWNLOAD_MAX_BYTES": str(size - 1)}
        )
        assert hub.fetched_files() == []
        fetched = _resolve_in_child(
            hub, uri, tmp_path, caps={"TUNEFORGE_DOWNLOAD_MAX_BYTES": str(size)}
        )
    assert (
        refused.get("error") == "StorageError"
        and "TUNEFORGE_DOWNLOAD_MAX_BYTES" in refused["message"]
    )
    assert Path(fetched["path"]).read_bytes() == TAGGED_FILES[checkpoint]
    assert Path(fetched["path"]).parent.parent.name == TAGGED_COMMIT
    assert hub.fetched_files() == [f"/{REPO_ID}/resolve/{TAGGED_COMMIT}/{checkpoint}"]


def test_an_unknown_repo_is_named_in_the_error(tmp_path: Path) -> None:
    with hub_standin(STANDIN_REPOS) as hub:
        answer = _resolve_in_child(hub, "hf://org/missing", tmp_path, caps={})
    assert answer.get("error") == "StorageError", answer
    assert "hf://org/missing" in answer["message"] and "cache holds no copy" in answer["message"]
    assert hub.fetched_files() == []


def test_a_file_of_unknown_size_is_refused() -> None:
    listed = [
        DryRunFileInfo(TAGGED_COMMIT, 10, "model_index.json", "/x/model_index.json", False, True),
        DryRunFileInfo(TAGGED_COMMIT, None, "unet/w.safetensors", "/x/w", False, True),
    ]
    with pytest.raises(StorageError, match="no size for unet/w.safetensors"):
        check_hub_download_caps("hf://org/x", listed, Settings())
    check_hub_download_caps("hf://org/x", listed[:1], Settings(download_max_bytes=10))
    with pytest.raises(StorageError, match="TUNEFORGE_DOWNLOAD_MAX_BYTES=9"):
        check_hub_download_caps("hf://org/x", listed[:1], Settings(download_max_bytes=9))
