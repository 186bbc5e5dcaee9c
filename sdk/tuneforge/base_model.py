"""Base models in every form a user holds: one resolver for the trainer and serving alike.

`baseModel.uri` (and the serving base) names either

- a **diffusers folder**: a local path, `s3://bucket/prefix`, or `hf://org/repo` (a
  revision as `hf://org/repo@rev` or `revision=`); or
- a **single-file checkpoint** in the original layout A1111 and ComfyUI read: a local
  `.safetensors` file, `s3://bucket/model.safetensors`, or `hf://org/repo/file.safetensors`.

`.ckpt`, `.bin`, `.pt` and `.pth` are pickles: refused before anything is downloaded, with
the one-line conversion to run. `hf://` fetches only what the pipeline loads (configs,
tokenizer, one weight file per component; `variant="fp16"` picks the `*.fp16.safetensors`
files) at the given revision, within the download caps (`tuneforge.hub_download` checks the
sizes the Hub lists before anything is fetched). `resolve_base_model` returns a local
`ResolvedBaseModel`; `base_model_fingerprint` (`tuneforge.base_fingerprint`) hashes its
weights the same way whatever form they came in. No torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tuneforge.inputs import HF_SCHEME, materialize
from tuneforge.settings import Settings
from tuneforge.storage import is_s3_uri, local_path

SINGLE_FILE_SUFFIX = ".safetensors"
VARIANTS = ("fp16",)
"""Weight-file variants a diffusers folder may hold (`unet/diffusion_pytorch_model.fp16.safetensors`)."""
COMPONENT_WEIGHTS = {
    "unet": "diffusion_pytorch_model",
    "vae": "diffusion_pytorch_model",
    "text_encoder": "model",
}
"""Each pipeline component's weight file name, without variant and suffix."""
_PICKLE_CONVERSIONS = {
    ".ckpt": (
        "python scripts/convert_original_stable_diffusion_to_diffusers.py "
        "--checkpoint_path {name} --dump_path {stem} --to_safetensors"
        "  (from the diffusers repository; then use the folder {stem})"
    ),
    ".bin": (
        'python -c "import torch, safetensors.torch as st; '
        "st.save_file(torch.load('{name}', weights_only=True), '{stem}.safetensors')\""
    ),
}
_PICKLE_CONVERSIONS[".pt"] = _PICKLE_CONVERSIONS[".bin"]
_PICKLE_CONVERSIONS[".pth"] = _PICKLE_CONVERSIONS[".bin"]


class UnsupportedCheckpointError(ValueError):
    """A pickled checkpoint (`.ckpt`, `.bin`, `.pt`): the message gives the conversion."""


@dataclass(frozen=True)
class BaseModelSource:
    """A parsed base-model URI: where it is and which form it has."""

    uri: str
    scheme: str
    """`local`, `s3` or `hf`."""
    location: str
    """The local path, the `s3://` URI, or the Hub repo id."""
    filename: str | None = None
    """The file inside a Hub repo, for a single-file checkpoint there."""
    revision: str | None = None
    variant: str | None = None

    @property
    def single_file(self) -> bool:
        """True for a single `.safetensors` checkpoint, False for a diffusers folder."""
        name = self.filename or self.location
        return name.lower().endswith(SINGLE_FILE_SUFFIX)


@dataclass(frozen=True)
class ResolvedBaseModel:
    """A base model on local disk: a diffusers folder or a single `.safetensors` file."""

    path: Path
    single_file: bool
    variant: str | None = None


def parse_base_model(
    uri: str, revision: str | None = None, variant: str | None = None
) -> BaseModelSource:
    """Parse `uri`; UnsupportedCheckpointError for pickles, ValueError for anything else wrong."""
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not supported; use one of {VARIANTS} or none")
    refuse_pickle(uri)
    if uri.startswith(HF_SCHEME):
        return _parse_hf(uri, revision, variant)
    if is_s3_uri(uri):
        return BaseModelSource(uri, "s3", uri.rstrip("/"), variant=variant)
    path = local_path(uri)
    if path is None:
        raise ValueError(
            f"unsupported base model URI {uri!r}: use a local path, s3://bucket/prefix, "
            "hf://org/repo[@revision] or a .safetensors file in any of these"
        )
    return BaseModelSource(uri, "local", str(path.expanduser()), variant=variant)


def refuse_pickle(uri: str) -> None:
    """Raise UnsupportedCheckpointError, naming the conversion, when `uri` is a pickle."""
    name = PurePosixPath(uri)
    suffix = name.suffix.lower()
    if suffix in _PICKLE_CONVERSIONS:
        command = _PICKLE_CONVERSIONS[suffix].format(name=name.name, stem=name.stem)
        raise UnsupportedCheckpointError(
            f"{uri}: {suffix} checkpoints are pickles and are never loaded; convert it to "
            f"safetensors first: {command}"
        )


def _parse_hf(uri: str, revision: str | None, variant: str | None) -> BaseModelSource:
    parts = uri.removeprefix(HF_SCHEME).strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError(f"{uri!r}: expected hf://org/repo[@revision][/file.safetensors]")
    org, repo = parts[0], parts[1]
    repo, _, in_uri = repo.partition("@")
    if in_uri and revision and in_uri != revision:
        raise ValueError(f"{uri!r} names revision {in_uri!r} but revision is {revision!r}")
    filename = "/".join(parts[2:]) or None
    if filename is not None and not filename.lower().endswith(SINGLE_FILE_SUFFIX):
        raise ValueError(
            f"{uri!r}: a path inside a Hub repo must be a .safetensors checkpoint; "
            "name the repo alone for a diffusers folder"
        )
    return BaseModelSource(
        uri, "hf", f"{org}/{repo}", filename, revision=in_uri or revision, variant=variant
    )


def hf_allow_patterns(variant: str | None = None) -> list[str]:
    """The files of a diffusers repo a Stable Diffusion pipeline loads (nothing else)."""
    suffix = f".{variant}{SINGLE_FILE_SUFFIX}" if variant else SINGLE_FILE_SUFFIX
    return [
        "model_index.json",
        "*/config.json",
        "scheduler/scheduler_config.json",
        "tokenizer/*.json",
        "tokenizer/*.txt",
        "feature_extractor/preprocessor_config.json",
        *(f"{component}/{stem}{suffix}" for component, stem in COMPONENT_WEIGHTS.items()),
    ]


def resolve_base_model(
    uri: str,
    cache_dir: Path,
    settings: Settings,
    *,
    revision: str | None = None,
    variant: str | None = None,
) -> ResolvedBaseModel:
    """The base model `uri` names, on local disk (downloading `s3://` and `hf://` once).

    UnsupportedCheckpointError for pickles (before any download); FileNotFoundError when
    what arrived is neither a diffusers folder with weights nor a `.safetensors` file.
    """
    source = parse_base_model(uri, revision, variant)
    if source.scheme == "hf":
        path = _fetch_hf(source, cache_dir, settings)
    elif source.scheme == "s3":
        folder = materialize(source.location, cache_dir, settings)
        path = folder / PurePosixPath(source.location).name if source.single_file else folder
    else:
        path = Path(source.location)
    return _checked(source, path)


def _fetch_hf(source: BaseModelSource, cache_dir: Path, settings: Settings) -> Path:
    """Download at `source.revision`, within the download caps (`tuneforge.hub_download`)."""
    from tuneforge.hub_download import download_hub_file, download_hub_snapshot

    hub_cache = cache_dir / "hf"
    if source.filename is not None:
        return download_hub_file(
            source.location,
            source.filename,
            revision=source.revision,
            cache_dir=hub_cache,
            settings=settings,
        )
    return download_hub_snapshot(
        source.location,
        revision=source.revision,
        allow_patterns=hf_allow_patterns(source.variant),
        cache_dir=hub_cache,
        settings=settings,
    )


def _checked(source: BaseModelSource, path: Path) -> ResolvedBaseModel:
    if source.single_file:
        if not path.is_file():
            raise FileNotFoundError(f"base model {source.uri!r}: no file at {path}")
        return ResolvedBaseModel(path, single_file=True)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"base model {source.uri!r} is not a diffusers folder (no model_index.json in "
            f"{path}); give a diffusers folder or a single .safetensors checkpoint"
        )
    variant = source.variant or folder_variant(path)
    missing = [
        str(weights) for weights in component_weight_files(path, variant) if not weights.is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"base model {source.uri!r} lacks weights: {', '.join(missing)} "
            "(safetensors only; pass variant='fp16' for *.fp16.safetensors files)"
        )
    return ResolvedBaseModel(path, single_file=False, variant=variant)


def component_weight_files(folder: Path, variant: str | None) -> list[Path]:
    """The UNet, VAE and text-encoder weight files of a diffusers folder, for `variant`."""
    suffix = f".{variant}{SINGLE_FILE_SUFFIX}" if variant else SINGLE_FILE_SUFFIX
    return [folder / component / f"{stem}{suffix}" for component, stem in COMPONENT_WEIGHTS.items()]


def folder_variant(folder: Path) -> str | None:
    """None when the folder holds plain weights, else the first variant it holds fully."""
    if all(path.is_file() for path in component_weight_files(folder, None)):
        return None
    for variant in VARIANTS:
        if all(path.is_file() for path in component_weight_files(folder, variant)):
            return variant
    return None
