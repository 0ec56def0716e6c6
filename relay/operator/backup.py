"""Backup and restore of a relay: one archive of everything that makes it itself.

`relay backup` and the operator page's download both call `write_backup`; `relay
restore` calls `restore_backup`. Everything here blocks (run it in a worker thread
from trio code).

The archive is a gzipped tar. Its members are paths relative to the data dir, as the
config names them: the config (`relay.toml`), the signing key, the TLS key and
certificate, the CA file when it lives in the data dir, the database, and every media
file. The last member is `manifest.json`: the format and its version, the server name
and key id, the schema version, the creation time, and for every other member its
sha256 and size.

Rules kept:

- Safe while the relay runs: the database is copied with SQLite's online backup API
  (`store.backup.copy_database`, one consistent snapshot), under the media store's
  shared lock, so media cleanup cannot remove a file the snapshot names until every
  media file is in the archive. Media stored after the snapshot may be in it too
  (files no row names; `relay media cleanup` removes them after a restore).
- The copy is checked (`PRAGMA integrity_check`) before it goes into the archive, and
  the archive is written to a temporary name and renamed: a failed backup leaves no
  file that looks like a backup.
- Restore refuses a data dir that is not empty, accepts only regular files at plain
  relative paths, verifies every member against the manifest (and that nothing is
  missing or extra), checks the database and that the config, key and manifest agree;
  on any failure it removes what it wrote. Everything it writes is 0600, in 0700
  directories (store.private_files).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import relay
from relay.config import CONFIG_FILE, Config, ConfigError, load_config
from relay.media.blobs import BlobStore
from relay.runtime import clock
from relay.runtime.identity import IdentityError, read_signing_key
from store import backup as store_backup
from store import db as store_db
from store.private_files import make_private_dir, open_private

MANIFEST = "manifest.json"
FORMAT = "edge-relay-backup"
FORMAT_VERSION = 1
#: A manifest is ~120 bytes a file; this allows millions of media files.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
CHUNK = 1024 * 1024


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    server_name: str
    key_id: str
    files: int
    #: Bytes of the members (before compression).
    total_bytes: int
    schema_version: int


def write_backup(config: Config, output: Path) -> BackupSummary:
    """Write a backup of the relay `config` describes to `output` (replaced atomically)."""
    try:
        key = read_signing_key(config.signing_key_path)
    except IdentityError as exc:
        raise BackupError(str(exc)) from None
    output = output.absolute()
    if output.is_relative_to(config.data_dir.absolute()):
        raise BackupError(f"{output}: write the backup outside the data dir")
    fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory(prefix="relay-backup-", dir=output.parent) as tmp:
            summary = _write_archive(config, key.key_id, Path(partial), Path(tmp))
        os.replace(partial, output)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return summary


def _write_archive(config: Config, key_id: str, path: Path, tmp: Path) -> BackupSummary:
    files: dict[str, dict[str, Any]] = {}
    blobs = BlobStore(config.media_store)
    with blobs.lock(exclusive=False), tarfile.open(path, "w:gz", compresslevel=6) as tar:
        snapshot = tmp / "relay.db"
        schema_version = _snapshot_database(config, snapshot)
        _add_file(tar, files, _member_name(config, config.database_path), snapshot)
        for named in _identity_files(config):
            _add_file(tar, files, _member_name(config, named), named)
        for _sha256, blob in blobs.walk():
            try:
                _add_file(tar, files, _member_name(config, blob), blob)
            except FileNotFoundError:
                continue  # removed by a cleanup that started before our lock: no row names it
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "relay_version": relay.__version__,
            "server_name": config.server_name,
            "key_id": key_id,
            "schema_version": schema_version,
            "created_ts": clock.now_ms(),
            "files": files,
        }
        data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return BackupSummary(
        server_name=config.server_name,
        key_id=key_id,
        files=len(files),
        total_bytes=sum(f["size"] for f in files.values()),
        schema_version=schema_version,
    )


def _snapshot_database(config: Config, dest: Path) -> int:
    """Copy the live database to `dest` and check the copy; its schema version."""
    if not config.database_path.is_file():
        raise BackupError(f"{config.database_path}: no database")
    source = store_db.connect(config.database_path, synchronous=config.synchronous)
    try:
        version = store_backup.copy_database(source, dest)
    finally:
        source.close()
    copy = store_db.connect(dest, synchronous="NORMAL")
    try:
        problems = store_backup.integrity_problems(copy)
    finally:
        copy.close()
    if problems:
        raise BackupError(f"the database copy failed its integrity check: {problems[:3]}")
    return version


def _identity_files(config: Config) -> Iterator[Path]:
    """The config, keys and certificate (and the CA file, if it is in the data dir)."""
    yield config.data_dir / CONFIG_FILE
    yield config.signing_key_path
    yield config.tls_private_key_path
    yield config.tls_certificate_path
    if config.ca_file is not None and _inside(config.data_dir, config.ca_file):
        yield config.ca_file


def _inside(root: Path, path: Path) -> bool:
    return path.absolute().is_relative_to(root.absolute())


def _member_name(config: Config, path: Path) -> str:
    if not _inside(config.data_dir, path):
        raise BackupError(f"{path} is outside the data dir {config.data_dir}; move it in")
    return path.absolute().relative_to(config.data_dir.absolute()).as_posix()


def _add_file(tar: tarfile.TarFile, files: dict[str, Any], name: str, path: Path) -> None:
    """Add `path` as `name`, recording its sha256 and size (hashed as it is read)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        hashing = _HashingReader(f)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, int(time.time())
        tar.addfile(info, hashing)
    if hashing.read_bytes != size:
        raise BackupError(f"{path} changed size while it was read")
    files[name] = {"sha256": hashing.sha256.hexdigest(), "size": size}


class _HashingReader:
    """A file object that hashes what is read through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.sha256.update(data)
        self.read_bytes += len(data)
        return data


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    server_name: str
    key_id: str
    files: int
    created_ts: int


def restore_backup(archive: Path, data_dir: Path) -> RestoreSummary:
    """Restore `archive` into `data_dir` (missing or empty); on failure nothing is left."""
    if data_dir.exists():
        if not data_dir.is_dir():
            raise BackupError(f"{data_dir} exists and is not a directory")
        if any(data_dir.iterdir()):
            raise BackupError(f"{data_dir} is not empty; restore only into an empty directory")
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    created = not data_dir.exists()
    make_private_dir(data_dir)
    try:
        return _restore(archive, data_dir)
    except BaseException:
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            for child in list(data_dir.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _restore(archive: Path, data_dir: Path) -> RestoreSummary:
    written: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] | None = None
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{archive}: not a backup archive ({exc})") from None
    with tar:
        try:
            for member in tar:
                name = _safe_member_name(member)
                if name in written or (name == MANIFEST and manifest is not None):
                    raise BackupError(f"{archive}: {name} appears twice")
                source = tar.extractfile(member)
                assert source is not None  # a regular file (checked above)
                if name == MANIFEST:
                    if member.size > MAX_MANIFEST_BYTES:
                        raise BackupError(f"{archive}: the manifest is too large")
                    manifest = _parse_manifest(source.read())
                    continue
                written[name] = _extract(source, data_dir / name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError(f"{archive}: damaged archive ({exc})") from None
    if manifest is None:
        raise BackupError(f"{archive}: no {MANIFEST}: not an edge-relay backup")
    _verify(manifest["files"], written)
    return _check_restored(data_dir, manifest)


def _safe_member_name(member: tarfile.TarInfo) -> str:
    if not member.isreg():
        raise BackupError(f"archive member {member.name!r} is not a regular file")
    path = PurePosixPath(member.name)
    if (
        path.is_absolute()
        or not path.parts
        or any(part in ("", ".", "..") for part in path.parts)
        or "\\" in member.name
        or "\x00" in member.name
    ):
        raise BackupError(f"archive member {member.name!r} is not a plain relative path")
    return path.as_posix()


def _extract(source: IO[bytes], dest: Path) -> dict[str, Any]:
    make_private_dir(dest.parent)
    sha256, size = hashlib.sha256(), 0
    with os.fdopen(open_private(dest, os.O_WRONLY | os.O_EXCL), "wb") as out:
        while chunk := source.read(CHUNK):
            sha256.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return {"sha256": sha256.hexdigest(), "size": size}


def _parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BackupError(f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{MANIFEST}: not an edge-relay backup")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{MANIFEST}: backup format version {manifest.get('format_version')!r};"
            f" this relay reads version {FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()
    ):
        raise BackupError(f"{MANIFEST}: files must map names to checksums")
    for key in ("server_name", "key_id"):
        if not isinstance(manifest.get(key), str):
            raise BackupError(f"{MANIFEST}: {key} missing")
    return manifest


def _verify(expected: dict[str, Any], written: dict[str, dict[str, Any]]) -> None:
    missing = sorted(set(expected) - set(written))
    if missing:
        raise BackupError(f"the archive lacks {len(missing)} file(s) it lists: {missing[:3]}")
    extra = sorted(set(written) - set(expected))
    if extra:
        raise BackupError(f"the archive holds file(s) its manifest does not list: {extra[:3]}")
    bad = sorted(
        name
        for name, got in written.items()
        if got["sha256"] != expected[name]["sha256"] or got["size"] != expected[name].get("size")
    )
    if bad:
        raise BackupError(f"checksum mismatch for {len(bad)} file(s): {bad[:3]}")


def _check_restored(data_dir: Path, manifest: dict[str, Any]) -> RestoreSummary:
    """The restored dir is a relay: its config loads, its key and name are the manifest's,
    its database passes the integrity check."""
    try:
        config = load_config(data_dir)
        key = read_signing_key(config.signing_key_path)
    except (ConfigError, IdentityError) as exc:
        raise BackupError(f"the restored relay is unusable: {exc}") from None
    if config.server_name != manifest["server_name"] or key.key_id != manifest["key_id"]:
        raise BackupError("the restored config or key does not match the manifest")
    conn = store_db.connect(config.database_path, synchronous=config.synchronous)
    try:
        problems = store_backup.integrity_problems(conn)
    finally:
        conn.close()
    if problems:
        raise BackupError(f"the restored database failed its integrity check: {problems[:3]}")
    return RestoreSummary(
        server_name=config.server_name,
        key_id=key.key_id,
        files=len(manifest["files"]),
        created_ts=int(manifest.get("created_ts", 0)),
    )
