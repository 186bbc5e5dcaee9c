"""`hf://` downloads under the same caps as `s3://` ones, pinned to one commit.

Before a byte of a model is fetched, the Hub's own dry run (`snapshot_download(dry_run=True)`,
`hf_hub_download(dry_run=True)`) lists the files the real download would fetch, with their
sizes, at the commit the revision resolves to. Their count and total size are checked against
`download_max_objects`/`download_max_bytes` (`TUNEFORGE_DOWNLOAD_MAX_OBJECTS`/`_BYTES`,
`tuneforge.storage.check_download_caps`); a download over a cap is refused with a message
naming the setting. The download then runs at that commit, so what is fetched is what was
counted, even if the branch or tag moves meanwhile.

When the Hub cannot be asked (`HF_HUB_OFFLINE=1`, as embedded mode and the tests set it, or the
Hub unreachable) nothing is downloaded: only the local Hub cache is read, as before.
No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.errors import StorageError
from tuneforge.settings import Settings
from tuneforge.storage import check_download_caps

if TYPE_CHECKING:
    from huggingface_hub.file_download import DryRunFileInfo


def check_hub_download_caps(
    uri: str, planned: Sequence[DryRunFileInfo], settings: Settings
) -> None:
    """StorageError naming the cap setting when the planned files exceed the download caps.

    Every file counts, cached or not (as a resumed `s3://` download counts what it already
    has): the caps bound what one model may occupy. A file of unknown size is refused.
    """
    unknown = sorted(info.filename for info in planned if info.file_size is None)
    if unknown:
        raise StorageError(
            f"{uri}: the Hub gives no size for {', '.join(unknown)}, so the download caps "
            "(TUNEFORGE_DOWNLOAD_MAX_BYTES) cannot be checked; refusing to download it"
        )
    total = sum(info.file_size or 0 for info in planned)
    check_download_caps(uri, len(planned), total, settings)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def download_hub_snapshot(
    repo_id: str,
    *,
    revision: str | None,
    allow_patterns: list[str],
    cache_dir: Path,
    settings: Settings,
) -> Path:
    """The files of `repo_id` at `revision` that match `allow_patterns`, within the caps."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import DryRunError, LocalEntryNotFoundError

    def fetch(at: str | None, *, local_only: bool) -> Path:
        return Path(
            snapshot_download(
                repo_id,
                revision=at,
                allow_patterns=allow_patterns,
                cache_dir=str(cache_dir),
                local_files_only=local_only,
            )
        )

    if _hub_offline():
        return fetch(revision, local_only=True)
    try:
        planned = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=allow_patterns,
            cache_dir=str(cache_dir),
            dry_run=True,
        )
    except DryRunError as unlisted:
        # Unreachable, unknown repo or revision, no access: only the Hub cache may answer (as
        # snapshot_download itself falls back to it); nothing is downloaded.
        try:
            return fetch(revision, local_only=True)
        except LocalEntryNotFoundError as missing:
            raise StorageError(
                f"hf://{repo_id} at {revision or 'main'}: the Hub did not list it "
                f"({unlisted.__cause__ or unlisted}) and the Hub cache holds no copy"
            ) from missing
    files = [info for info in planned if not isinstance(info, str)]
    check_hub_download_caps(f"hf://{repo_id}", files, settings)
    commits = {info.commit_hash for info in files}
    return fetch(commits.pop() if len(commits) == 1 else revision, local_only=False)


def download_hub_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None,
    cache_dir: Path,
    settings: Settings,
) -> Path:
    """One file of `repo_id` at `revision` (a single-file checkpoint), within the caps."""
    from huggingface_hub import hf_hub_download

    def fetch(at: str | None, *, local_only: bool) -> Path:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=at,
                cache_dir=str(cache_dir),
                local_files_only=local_only,
            )
        )

    if _hub_offline():
        return fetch(revision, local_only=True)
    # Unreachable Hub: the dry run answers from the cache (is_cached) or raises as a real call.
    planned = hf_hub_download(
        repo_id, filename, revision=revision, cache_dir=str(cache_dir), dry_run=True
    )
    check_hub_download_caps(f"hf://{repo_id}/{filename}", [planned], settings)
    return fetch(planned.commit_hash, local_only=False)
