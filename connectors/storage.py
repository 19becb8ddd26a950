"""Where raw files live: local paths and S3 (boto3). Listing and fetching, shared by every connector.

A location is a local file or folder, or `s3://bucket/prefix` (option `endpoint_url` for S3-compatible stores,
`region` for the bucket's region; credentials come from boto3's own chain, never from CloudTally's database).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from connectors.base import IngestError, LocalFile, RemoteFile


def is_remote(location: str) -> bool:
    return "://" in location


def _s3_client(options: Mapping[str, str]):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=options.get("endpoint_url") or None,
        region_name=options.get("region") or None,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise IngestError(f"not an S3 URL (expected s3://bucket/prefix): {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def list_files(location: str, options: Mapping[str, str], keep: Callable[[str], bool]) -> list[RemoteFile]:
    """Every file under `location` (recursively) whose name `keep` accepts, in name order."""
    if location.startswith("s3://"):
        return _list_s3(location, options, keep)
    if is_remote(location):
        raise IngestError(f"unsupported location scheme: {location} (use a local path or s3://bucket/prefix)")
    root = Path(location).expanduser()
    if not root.exists():
        raise IngestError("no such file or folder", file=str(root))
    if root.is_file():
        paths = [root]
    else:
        paths = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts) and keep(p.name)
        )
    out = []
    for p in paths:
        st = p.stat()
        out.append(RemoteFile(str(p.resolve()), st.st_size, str(st.st_mtime_ns), st.st_mtime))
    return out


def _list_s3(location: str, options: Mapping[str, str], keep: Callable[[str], bool]) -> list[RemoteFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _split_s3(location)
    client = _s3_client(options)
    out = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                name = key.rsplit("/", 1)[-1]
                # `prefix` names a folder (with or without its trailing slash) or a single object.
                if prefix and not prefix.endswith("/") and not (key == prefix or key.startswith(prefix + "/")):
                    continue
                if name and not name.startswith(".") and keep(name):
                    out.append(RemoteFile(f"s3://{bucket}/{key}", obj["Size"], obj["ETag"].strip('"'),
                                          obj["LastModified"].timestamp()))
    except (ClientError, BotoCoreError) as exc:
        raise IngestError(f"cannot list {location}: {exc}") from exc
    return sorted(out, key=lambda f: f.uri)


def read_bytes(uri: str, options: Mapping[str, str]) -> bytes:
    """The whole content of a small object (a manifest)."""
    if not uri.startswith("s3://"):
        return Path(uri).read_bytes()
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3(uri)
    try:
        return _s3_client(options).get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise IngestError(f"cannot read: {exc}", file=uri) from exc


def join(location: str, relative: str) -> str:
    """A path or URL below a location."""
    if is_remote(location):
        return location.rstrip("/") + "/" + relative.lstrip("/")
    return str((Path(location) / relative).resolve())


def sha256_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fetch(remote: RemoteFile, options: Mapping[str, str], cache_dir: Path) -> LocalFile:
    """Make a remote file available locally (local files are used in place) and hash its content."""
    if not remote.uri.startswith("s3://"):
        path = Path(remote.uri)
        return LocalFile(remote.uri, path, path.stat().st_size, sha256_of(path))
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3(remote.uri)
    dest = cache_dir / "s3" / bucket / key
    marker = dest.with_name(dest.name + ".etag")
    if not (dest.exists() and marker.exists() and marker.read_text() == (remote.version or "")):
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            _s3_client(options).download_file(bucket, key, str(partial))
        except (ClientError, BotoCoreError) as exc:
            raise IngestError(f"cannot download: {exc}", file=remote.uri) from exc
        os.replace(partial, dest)
        marker.write_text(remote.version or "")
    return LocalFile(remote.uri, dest, dest.stat().st_size, sha256_of(dest))
