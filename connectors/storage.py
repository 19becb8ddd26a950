"""Where raw files live: local paths, S3 (boto3) and Azure Blob Storage. Listing and fetching, shared by every
connector.

A location is a local file or folder, `s3://bucket/prefix` (option `endpoint_url` for S3-compatible stores,
`region` for the bucket's region; credentials come from boto3's own chain), or `azure://account/container/prefix`
(azure-storage-blob; credentials: the connection string in the environment variable AZURE_STORAGE_CONNECTION_STRING
or in the one option `connection_string_env` names, else azure-identity's DefaultAzureCredential against
https://<account>.blob.core.windows.net; option `endpoint_url` for another blob endpoint such as Azurite,
http://127.0.0.1:10000/devstoreaccount1). Credentials never come from CloudTally's database.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from connectors.base import IngestError, LocalFile, RemoteFile

AZURE_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"


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
    if location.startswith("azure://"):
        return _list_azure(location, options, keep)
    if is_remote(location):
        raise IngestError(f"unsupported location scheme: {location} (use a local path, s3://bucket/prefix or "
                          f"azure://account/container/prefix)")
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
    if uri.startswith("azure://"):
        account, container, name = _split_azure(uri)
        with _azure_errors(uri, "cannot read"):
            return _azure_container(account, container, options).download_blob(name).readall()
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
    """Make a remote file available locally (local files are used in place) and hash its content.

    A downloaded file sits in the cache next to a `.etag` marker; a cached file whose marker matches the listed
    ETag is not downloaded again."""
    if remote.uri.startswith("azure://"):
        return _fetch_azure(remote, options, cache_dir)
    if not remote.uri.startswith("s3://"):
        path = Path(remote.uri)
        return LocalFile(remote.uri, path, path.stat().st_size, sha256_of(path), remote.role)
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
    return LocalFile(remote.uri, dest, dest.stat().st_size, sha256_of(dest), remote.role)


# -- Azure Blob Storage ------------------------------------------------------------------------------------------
def _split_azure(uri: str) -> tuple[str, str, str]:
    """azure://account/container/prefix -> (account, container, prefix)."""
    parsed = urlparse(uri)
    container, _, name = parsed.path.lstrip("/").partition("/")
    if parsed.scheme != "azure" or not parsed.netloc or not container:
        raise IngestError(f"not an Azure Blob URL (expected azure://account/container/prefix): {uri}")
    return parsed.netloc, container, name


_AZURE_CLIENTS: dict[tuple, object] = {}
_AZURE_LOCK = threading.Lock()


def _azure_service(account: str, options: Mapping[str, str]):
    """A BlobServiceClient for the account, built from the environment (never from stored options)."""
    env_name = options.get("connection_string_env") or AZURE_CONNECTION_STRING_ENV
    conn = os.environ.get(env_name)
    if options.get("connection_string_env") and not conn:
        raise IngestError(f"environment variable {env_name} (option connection_string_env) is not set")
    endpoint = options.get("endpoint_url") or None
    key = (account, endpoint, env_name, hashlib.sha256((conn or "").encode()).hexdigest())
    with _AZURE_LOCK:
        client = _AZURE_CLIENTS.get(key)
        if client is None:
            from azure.storage.blob import BlobServiceClient

            if conn:
                if endpoint:  # the connection string's key, another blob endpoint (Azurite, a private endpoint)
                    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
                    parts["BlobEndpoint"] = endpoint
                    conn = ";".join(f"{k}={v}" for k, v in parts.items())
                client = BlobServiceClient.from_connection_string(conn)
            else:
                from azure.identity import DefaultAzureCredential

                client = BlobServiceClient(endpoint or f"https://{account}.blob.core.windows.net",
                                           credential=DefaultAzureCredential())
            _AZURE_CLIENTS[key] = client
    return client


def _azure_container(account: str, container: str, options: Mapping[str, str]):
    return _azure_service(account, options).get_container_client(container)


class _azure_errors:
    """Turn the SDK's errors into IngestErrors that say what to check (role, firewall, name)."""

    def __init__(self, where: str, what: str):
        self.where, self.what = where, what

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None:
            return False
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

        if not isinstance(exc, (AzureError, ValueError)):  # ValueError: a malformed connection string or URL
            return False
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "error_code", None) or ""
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, ClientAuthenticationError) and status is None:
            hint = ("no Azure credential found: set AZURE_STORAGE_CONNECTION_STRING, or sign in for "
                    "DefaultAzureCredential (environment, managed identity, az login)")
        elif status == 403:
            hint = (f"access denied ({code or 403}): the identity needs the Storage Blob Data Reader role on the "
                    f"container, and the storage account's firewall must admit this machine")
        elif status == 404:
            hint = f"not found ({code or 404}): check the account, container and prefix"
        elif isinstance(exc, HttpResponseError):
            hint = f"{code or status}: {message}"
        else:
            hint = message
        raise IngestError(f"{self.what}: {hint}", file=self.where) from exc


def _list_azure(location: str, options: Mapping[str, str], keep: Callable[[str], bool]) -> list[RemoteFile]:
    account, container, prefix = _split_azure(location)
    prefix = prefix.rstrip("/")
    out = []
    with _azure_errors(location, "cannot list"):
        client = _azure_container(account, container, options)
        for blob in client.list_blobs(name_starts_with=prefix or None):
            name = blob.name
            if prefix and not (name == prefix or name.startswith(prefix + "/")):
                continue
            base = name.rsplit("/", 1)[-1]
            if not base or base.startswith(".") or not keep(base):
                continue
            out.append(RemoteFile(f"azure://{account}/{container}/{name}", blob.size, (blob.etag or "").strip('"'),
                                  blob.last_modified.timestamp() if blob.last_modified else None))
    return sorted(out, key=lambda f: f.uri)


def _fetch_azure(remote: RemoteFile, options: Mapping[str, str], cache_dir: Path) -> LocalFile:
    account, container, name = _split_azure(remote.uri)
    dest = cache_dir / "azure" / account / container / name
    marker = dest.with_name(dest.name + ".etag")
    if not (dest.exists() and marker.exists() and marker.read_text() == (remote.version or "")):
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        with _azure_errors(remote.uri, "cannot download"):
            downloader = _azure_container(account, container, options).download_blob(name)
            with open(partial, "wb") as fh:
                downloader.readinto(fh)
        os.replace(partial, dest)
        marker.write_text(remote.version or "")
    return LocalFile(remote.uri, dest, dest.stat().st_size, sha256_of(dest), remote.role)
