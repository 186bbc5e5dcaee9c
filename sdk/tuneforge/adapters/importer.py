"""`tuneforge adapters import`: a community adapter file -> a registered, servable adapter.

    detect the layout (header only) -> convert to the canonical layout (diffusers' key maps)
    -> check every layer (Linear or Conv2d) against the base model's shapes and against what
    serving's LoRA slots hold (largest slot rank, target modules) -> write the folder and its
    manifest
    -> register it in MLflow with lineage tags (source `import`, sha256, original layout).

Everything is refused before anything is registered, naming the layer and the limit.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.adapters.base_shapes import BaseShapes, ShapeMismatch
from tuneforge.adapters.embeddings import check_dim, read_embeddings, write_embeddings
from tuneforge.adapters.layouts import AdapterFormatError, Layout, detect_layout
from tuneforge.adapters.lora_convert import (
    ALL_LAYERS,
    LoraModules,
    LoraPair,
    read_lora,
    slot_target,
    write_canonical_section,
)
from tuneforge.base_fingerprint import base_model_fingerprint
from tuneforge.base_model import ResolvedBaseModel, resolve_base_model
from tuneforge.contract import (
    ADAPTER_MANIFEST,
    LORA_WEIGHTS,
    TI_EMBEDDINGS,
    AdapterManifest,
    EmbeddingsSection,
    LoraSection,
    Tag,
)
from tuneforge.registry import AdapterRegistry, RegisteredVersion, ensure_experiment
from tuneforge.settings import Settings

IMPORT_SOURCE = "import"
"""Value of `Tag.SOURCE` on an imported adapter's run and model version."""
IMPORT_EXPERIMENT = "tuneforge-imports"
"""MLflow experiment that holds one run per import."""


SERVING_LARGEST_RANK = 64
"""The largest of serving's default `hotswap.rankBuckets` (16, 64)."""


@dataclass(frozen=True)
class ServingLimits:
    """What serving's LoRA slots hold (`hotswap` in the serving config; these are its defaults)."""

    max_rank: int = SERVING_LARGEST_RANK
    """The largest of `hotswap.rankBuckets` (that the memory budget leaves)."""
    unet_targets: tuple[str, ...] = (ALL_LAYERS,)
    """`hotswap.unetTargetModules` (`all`: every Linear and Conv2d)."""
    text_encoder_targets: tuple[str, ...] = (ALL_LAYERS,)
    """`hotswap.textEncoderTargetModules`."""


@dataclass
class ConvertedAdapter:
    """An adapter folder in the canonical layout, ready to register."""

    folder: Path
    manifest: AdapterManifest
    layout: Layout
    sha256: str
    tags: dict[str, str] = field(default_factory=dict)
    """Lineage tags for the run and the model version."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert_adapter(
    source: Path,
    out_dir: Path,
    base: ResolvedBaseModel,
    base_uri: str,
    *,
    token: str | None = None,
    limits: ServingLimits | None = None,
) -> ConvertedAdapter:
    """Convert `source` into `out_dir` (canonical files + manifest) for base `base`."""
    layout = detect_layout(source)
    shapes = BaseShapes.of(base)
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = base_model_fingerprint(base.path)
    if layout.is_lora:
        if token is not None:
            raise AdapterFormatError(f"--token: {source.name} is a LoRA, not an embedding")
        section = _convert_lora(source, layout, shapes, limits or ServingLimits(), out_dir)
        manifest = AdapterManifest(
            method="lora",
            base_model=base_uri,
            base_model_fingerprint=fingerprint,
            files=[LORA_WEIGHTS],
            lora=section,
        )
    else:
        embeddings = read_embeddings(source, layout, token)
        check_dim(embeddings, shapes.embedding_dim(), source.name)
        write_embeddings(embeddings, out_dir / TI_EMBEDDINGS)
        manifest = AdapterManifest(
            method="textualInversion",
            base_model=base_uri,
            base_model_fingerprint=fingerprint,
            files=[TI_EMBEDDINGS],
            embeddings=EmbeddingsSection(tokens=list(embeddings)),
        )
    (out_dir / ADAPTER_MANIFEST).write_text(manifest.to_file_text())
    sha = file_sha256(source)
    tags = {
        Tag.SOURCE: IMPORT_SOURCE,
        Tag.SOURCE_SHA256: sha,
        Tag.SOURCE_LAYOUT: layout.value,
        Tag.SOURCE_FILE: source.name,
    }
    return ConvertedAdapter(out_dir, manifest, layout, sha, tags)


def _convert_lora(
    source: Path, layout: Layout, shapes: BaseShapes, limits: ServingLimits, out_dir: Path
) -> LoraSection:
    modules = read_lora(source, layout)
    canonical = LoraModules()
    for (component, module), pair in sorted(modules.pairs.items()):
        where = f"{source.name}: {component}.{module}"
        rank = int(pair.down.shape[0])
        try:
            shapes.check_layer(component, module, _update_shape(pair))
        except ShapeMismatch as error:
            raise AdapterFormatError(f"{source.name}: {error}") from error
        targets = limits.unet_targets if component == "unet" else limits.text_encoder_targets
        if slot_target(module, targets) is None:
            raise AdapterFormatError(
                f"{where} has no serving LoRA slot: serving's slots hold {component} modules "
                f"{list(targets)} (hotswap.{_limit_name(component)})"
            )
        if rank > limits.max_rank:
            raise AdapterFormatError(
                f"{where} has rank {rank}, over the memory budget: serving's largest slot rank "
                f"is {limits.max_rank} (hotswap.rankBuckets); give the server a larger bucket "
                "and pass --max-rank"
            )
        canonical.pairs[(component, shapes.module_path(component, module))] = pair
    return write_canonical_section(canonical, out_dir / LORA_WEIGHTS, limits.unet_targets)


def _update_shape(pair: LoraPair) -> tuple[int, ...]:
    """The shape of `up @ down`: (out, in) for a Linear, (out, in, kh, kw) for a Conv2d."""
    return (int(pair.up.shape[0]), *(int(n) for n in pair.down.shape[1:]))


def _limit_name(component: str) -> str:
    return "unetTargetModules" if component == "unet" else "textEncoderTargetModules"


def import_adapter(
    source: str | Path,
    name: str,
    *,
    base_model: str | None = None,
    alias: str | None = None,
    token: str | None = None,
    limits: ServingLimits | None = None,
    settings: Settings | None = None,
) -> RegisteredVersion:
    """Convert `source` and register it as a new version of `name` (see the module doc).

    `base_model`: the base's URI (default `Settings.serving_base_model`, else SD 1.5 on the
    hub); `token`: an embedding's token (A1111 files default to the file's stem).
    """
    from tuneforge.api.spec import DEFAULT_BASE_MODEL

    settings = settings or Settings()
    path = Path(source).expanduser()
    detect_layout(path)  # refuse pickles and unknown layouts before resolving the base
    base_uri = base_model or settings.serving_base_model or DEFAULT_BASE_MODEL
    base = resolve_base_model(base_uri, Path(settings.home) / "cache" / "base-models", settings)
    registry = AdapterRegistry(settings)
    with tempfile.TemporaryDirectory(prefix="tuneforge-import-") as staging:
        converted = convert_adapter(path, Path(staging), base, base_uri, token=token, limits=limits)
        with registry.store.client() as client:
            experiment_id = ensure_experiment(client, settings, IMPORT_EXPERIMENT)
            run = client.create_run(experiment_id, run_name=f"import-{name}", tags=converted.tags)
        run_id = run.info.run_id
        try:
            registered = registry.register(
                run_id, converted.folder, converted.manifest, name, alias, tags=converted.tags
            )
        except BaseException:
            with registry.store.client() as client:
                client.set_terminated(run_id, "FAILED")
            raise
        with registry.store.client() as client:
            client.set_terminated(run_id, "FINISHED")
    return registered
