"""relay/operator/backup.py: what restore refuses (and that it then leaves nothing behind)."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from relay.config import load_config
from relay.operator.backup import BackupError, restore_backup, write_backup
from tests.integration.conftest import run_cli


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    data = tmp_path / "kit"
    run_cli("init", "--data-dir", str(data), "--server-name", "kit.example")
    run_cli("user", "add", "op", "--password", "pw", "--admin", "--data-dir", str(data))
    (data / "media" / "ab" / "cd").mkdir(parents=True)
    (data / "media" / "ab" / "cd" / ("abcd" + "0" * 60)).write_bytes(b"a media file")
    out = tmp_path / "kit.tar.gz"
    summary = write_backup(load_config(data), out)
    assert summary.server_name == "kit.example" and summary.files == 6
    return out


def _rewrite(source: Path, dest: Path, change) -> None:
    """Copy an archive member by member, `change(name, data)` -> data | None (drop)."""
    with tarfile.open(source) as tin, tarfile.open(dest, "w:gz") as tout:
        for member in tin:
            data = tin.extractfile(member).read()
            new = change(member.name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(new)
            tout.addfile(info, io.BytesIO(new))


def test_restore_makes_private_files(archive: Path, tmp_path: Path) -> None:
    summary = restore_backup(archive, tmp_path / "new")
    assert summary.server_name == "kit.example"
    key = tmp_path / "new" / "signing.key"
    assert key.read_bytes() == (tmp_path / "kit" / "signing.key").read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new" / "media").stat().st_mode) == 0o700


def test_restore_refuses_a_non_empty_dir(archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    proc = run_cli("restore", "--data-dir", str(target), str(archive), check=False)
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_restore_refuses_a_changed_byte_and_leaves_nothing(archive: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    _rewrite(archive, bad, lambda name, data: data[:-1] + b"X" if name == "tls.crt" else data)
    target = tmp_path / "empty"
    target.mkdir()
    with pytest.raises(BackupError, match="checksum mismatch"):
        restore_backup(bad, target)
    assert list(target.iterdir()) == []


def test_restore_refuses_a_missing_or_unlisted_file(archive: Path, tmp_path: Path) -> None:
    dropped = tmp_path / "dropped.tar.gz"
    _rewrite(archive, dropped, lambda name, data: None if name == "tls.key" else data)
    with pytest.raises(BackupError, match="lacks"):
        restore_backup(dropped, tmp_path / "a")
    assert not (tmp_path / "a").exists()

    def unlisted(name: str, data: bytes) -> bytes:
        if name == "manifest.json":
            manifest = json.loads(data)
            del manifest["files"]["tls.key"]
            return json.dumps(manifest).encode()
        return data

    extra = tmp_path / "extra.tar.gz"
    _rewrite(archive, extra, unlisted)
    with pytest.raises(BackupError, match="does not list"):
        restore_backup(extra, tmp_path / "b")


def test_restore_refuses_paths_outside_the_dir(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BackupError, match="plain relative path"):
        restore_backup(evil, tmp_path / "c")
    assert not (tmp_path / "escaped").exists()


def test_backup_refuses_to_write_into_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "kit"
    run_cli("init", "--data-dir", str(data), "--server-name", "kit.example")
    with pytest.raises(BackupError, match="outside the data dir"):
        write_backup(load_config(data), data / "b.tar.gz")
