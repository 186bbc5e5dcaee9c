"""Object storage helpers shared by the SDK, trainer and serving (S3 via the minio client).

Everything is addressed by URI: `s3://bucket/prefix` goes through the S3 endpoint in
`Settings` (`TUNEFORGE_S3_ENDPOINT`, `TUNEFORGE_S3_ACCESS_KEY`, `TUNEFORGE_S3_SECRET_KEY`);
a local path or `file://` URI is copied, so embedded mode and tests use the same calls.
No torch here.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from tuneforge.errors import ConfigurationError, StorageError
from tuneforge.settings import Settings

if TYPE_CHECKING:
    from minio import Minio

#: Progress callback: (bytes done, bytes in total).
ProgressCallback = Callable[[int, int], None]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class S3Uri:
    """`s3://bucket/prefix`, split. `prefix` has no leading or trailing slash (may be empty)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Parse `s3://bucket[/prefix]`; ValueError naming the URI and the fix otherwise."""
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"S3 URI {uri!r} has no bucket (expected s3://bucket/prefix)")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise ValueError(
                f"S3 URI {uri!r}: {bucket!r} is not a valid bucket name "
                "(3-63 characters: lowercase letters, digits, '.' and '-')"
            )
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ValueError(
                f"S3 URI {uri!r}: the prefix may not contain empty, '.' or '..' segments"
            )
        return cls(bucket=bucket, prefix=prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def join(self, *parts: str) -> S3Uri:
        """This URI with path segments appended (`S3Uri.parse("s3://b/a").join("c")` = `s3://b/a/c`)."""
        segments = [self.prefix] if self.prefix else []
        segments += [part.strip("/") for part in parts if part.strip("/")]
        return S3Uri.parse(f"s3://{self.bucket}/{'/'.join(segments)}")

    def key(self, relative: str) -> str:
        """The object key of `relative` under this prefix."""
        relative = relative.strip("/")
        return f"{self.prefix}/{relative}" if self.prefix else relative


def is_s3_uri(uri: object) -> bool:
    """Whether `uri` is a string starting with `s3://`."""
    return isinstance(uri, str) and uri.startswith("s3://")


def local_path(uri: str | Path) -> Path | None:
    """The local path a plain path or `file://` URI names; None for any other scheme."""
    if isinstance(uri, Path):
        return uri
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        return Path(unquote(parsed.path))
    if "://" in uri or uri.startswith(("mlflow-artifacts:", "runs:", "models:")):
        return None
    return Path(uri)


def _credentials(settings: Settings) -> tuple[str, bool, str, str]:
    missing = settings.missing_s3_settings()
    if missing:
        raise ConfigurationError(
            f"S3 is not configured: set {', '.join(missing)} "
            "(endpoint as host:port or http(s)://host:port)"
        )
    host, secure = settings.s3_host_and_secure()
    assert settings.s3_access_key is not None and settings.s3_secret_key is not None
    return host, secure, settings.s3_access_key, settings.s3_secret_key.get_secret_value()


def minio_client(
    settings: Settings | None = None,
    *,
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 300.0,
    retries: int = 3,
) -> Minio:
    """A minio client for the configured endpoint; ConfigurationError naming what is missing."""
    import urllib3
    from minio import Minio

    host, secure, access_key, secret_key = _credentials(settings or Settings())
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        maxsize=10,
        retries=urllib3.Retry(
            total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
        ),
    )
    region = (settings or Settings()).s3_region
    return Minio(
        host,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=region,
        http_client=http,
    )


def _endpoint_text(settings: Settings) -> str:
    try:
        return settings.s3_url()
    except ValueError:
        return "<unset>"


def check_reachable(settings: Settings | None = None, timeout_s: float = 3.0) -> None:
    """Fail fast (no retries) when the S3 endpoint is down or rejects the credentials.

    Raises StorageError (unreachable), ConfigurationError (not configured, credentials
    refused); returns None when a `list_buckets` call succeeds.
    """
    from minio.error import S3Error

    settings = settings or Settings()
    client = minio_client(
        settings, connect_timeout_s=timeout_s, read_timeout_s=timeout_s, retries=0
    )
    try:
        client.list_buckets()
    except S3Error as error:
        if error.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise ConfigurationError(
                f"S3 at {_endpoint_text(settings)} refused the credentials ({error.code}): "
                "check TUNEFORGE_S3_ACCESS_KEY and TUNEFORGE_S3_SECRET_KEY"
            ) from error
        raise StorageError(f"S3 at {_endpoint_text(settings)} answered {error.code}") from error
    except Exception as error:  # urllib3/socket errors: the endpoint is not there
        raise StorageError(
            f"S3 endpoint {_endpoint_text(settings)} is unreachable "
            f"({type(error).__name__}: {error}): is the server running and "
            "TUNEFORGE_S3_ENDPOINT right?"
        ) from error


def ensure_bucket(bucket_or_uri: str, settings: Settings | None = None) -> str:
    """Create the bucket (a name or an `s3://` URI's bucket) unless it exists; return its name."""
    from minio.error import S3Error

    bucket = S3Uri.parse(bucket_or_uri).bucket if is_s3_uri(bucket_or_uri) else bucket_or_uri
    S3Uri.parse(f"s3://{bucket}")  # validates the name
    client = minio_client(settings)
    try:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    except S3Error as error:
        if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StorageError(f"cannot create bucket {bucket!r}: {error.code}") from error
    return bucket


def _safe_relative(relative: str, uri: str) -> PurePosixPath:
    path = PurePosixPath(relative)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts) or not path.parts:
        raise StorageError(f"refusing object {relative!r} under {uri}: unsafe relative path")
    return path


def _list_objects(client: Minio, uri: S3Uri) -> list[tuple[str, str, int]]:
    """(key, relative path, size) of each object under the prefix, or the one object it names."""
    prefix = f"{uri.prefix}/" if uri.prefix else ""
    found = [
        (str(obj.object_name), str(obj.object_name)[len(prefix) :], int(obj.size or 0))
        for obj in client.list_objects(uri.bucket, prefix=prefix, recursive=True)
        if obj.object_name and not obj.is_dir and not str(obj.object_name).endswith("/")
    ]
    if not found and uri.prefix:
        from minio.error import S3Error

        try:
            stat = client.stat_object(uri.bucket, uri.prefix)
        except S3Error:
            return []
        found = [(uri.prefix, PurePosixPath(uri.prefix).name, int(stat.size or 0))]
    return sorted(found)


def list_prefix(uri: str, settings: Settings | None = None) -> list[str]:
    """Relative names (`a/b.txt`) of the objects under an `s3://` prefix, sorted."""
    from minio.error import S3Error

    s3_uri = S3Uri.parse(uri)
    try:
        return [relative for _, relative, _ in _list_objects(minio_client(settings), s3_uri)]
    except S3Error as error:
        raise StorageError(f"cannot list {uri}: {error.code} ({error.message})") from error


def download_prefix(
    uri: str | Path,
    dest: str | Path,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Copy everything under `uri` (s3://, file:// or a local path) into `dest`.

    Keeps the layout below the prefix; files already in `dest` with the same size are
    skipped (a re-run resumes). Returns every local file, sorted. StorageError when
    nothing exists at `uri` or a transfer fails. progress(done_bytes, total_bytes) is
    called after each chunk.
    """
    dest = Path(dest)
    source = local_path(uri) if not is_s3_uri(uri) else None
    if source is not None:
        return _copy_local(source, dest, progress)
    if not is_s3_uri(uri):
        raise ValueError(f"unsupported storage URI {uri!r}: use s3://, file:// or a local path")
    return _download_s3(S3Uri.parse(str(uri)), dest, settings or Settings(), progress)


def check_download_caps(uri: S3Uri | str, objects: int, size: int, settings: Settings) -> None:
    """StorageError naming the cap setting when a download is larger than the caps allow
    (`s3://` here, `hf://` in `tuneforge.hub_download`)."""
    caps = (
        ("objects", objects, settings.download_max_objects, "TUNEFORGE_DOWNLOAD_MAX_OBJECTS"),
        ("bytes", size, settings.download_max_bytes, "TUNEFORGE_DOWNLOAD_MAX_BYTES"),
    )
    for what, value, cap, variable in caps:
        if value > cap:
            raise StorageError(
                f"{uri} holds {value} {what}, more than the download cap {variable}={cap}: "
                "narrow the URI to what the job needs, or ask the platform team to raise the cap"
            )


def _download_s3(
    uri: S3Uri, dest: Path, settings: Settings, progress: ProgressCallback | None
) -> list[Path]:
    from minio.error import S3Error

    client = minio_client(settings)
    try:
        objects = _list_objects(client, uri)
    except S3Error as error:
        raise StorageError(f"cannot list {uri}: {error.code} ({error.message})") from error
    if not objects:
        raise StorageError(f"nothing found at {uri}: check the bucket and prefix")
    total = sum(size for _, _, size in objects)
    check_download_caps(uri, len(objects), total, settings)
    done = 0
    paths: list[Path] = []
    for key, relative, size in objects:
        target = dest.joinpath(*_safe_relative(relative, str(uri)).parts)
        paths.append(target)
        if target.is_file() and target.stat().st_size == size:
            done += size
            if progress:
                progress(done, total)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            response = client.get_object(uri.bucket, key)
            try:
                with partial.open("wb") as handle:
                    for chunk in response.stream(_CHUNK):
                        handle.write(chunk)
                        done += len(chunk)
                        check_download_caps(uri, len(objects), done, settings)
                        if progress:
                            progress(done, total)
            finally:
                response.close()
                response.release_conn()
        except S3Error as error:
            raise StorageError(f"cannot download s3://{uri.bucket}/{key}: {error.code}") from error
        partial.replace(target)
    return sorted(paths)


def _walk_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(".part"):
            yield path


def _copy_local(source: Path, dest: Path, progress: ProgressCallback | None) -> list[Path]:
    if not source.exists():
        raise StorageError(f"nothing found at {source}: the path does not exist")
    pairs = (
        [(source, dest / source.name)]
        if source.is_file()
        else [(path, dest / path.relative_to(source)) for path in _walk_files(source)]
    )
    total = sum(path.stat().st_size for path, _ in pairs)
    done = 0
    for path, target in pairs:
        size = path.stat().st_size
        if not (target.is_file() and target.stat().st_size == size):
            if path.resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        done += size
        if progress:
            progress(done, total)
    return sorted(target for _, target in pairs)


def upload_dir(local_dir: str | Path, uri: str, settings: Settings | None = None) -> list[str]:
    """Upload every file under `local_dir` to `uri` (keeping the layout); return their URIs.

    `uri` may also be a local path or `file://` URI (the folder is copied). The bucket
    must exist (see `ensure_bucket`); StorageError names it otherwise.
    """
    from minio.error import S3Error

    root = Path(local_dir)
    if not root.is_dir():
        raise StorageError(f"cannot upload {root}: not a directory")
    target = local_path(uri) if not is_s3_uri(uri) else None
    if target is not None:
        return [str(path) for path in _copy_local(root, target, None)]
    s3_uri = S3Uri.parse(uri)
    client = minio_client(settings)
    try:
        if not client.bucket_exists(s3_uri.bucket):
            raise StorageError(
                f"bucket {s3_uri.bucket!r} does not exist at {_endpoint_text(settings or Settings())}: "
                "create it first (tuneforge.storage.ensure_bucket)"
            )
        uploaded = []
        for path in _walk_files(root):
            key = s3_uri.key(path.relative_to(root).as_posix())
            client.fput_object(s3_uri.bucket, key, str(path))
            uploaded.append(f"s3://{s3_uri.bucket}/{key}")
    except S3Error as error:
        raise StorageError(f"cannot upload {root} to {uri}: {error.code}") from error
    return uploaded
