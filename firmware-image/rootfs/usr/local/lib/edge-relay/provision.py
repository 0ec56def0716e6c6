"""First-boot provisioning of the edge-relay appliance (run by edge-relay-provision.service).

Reads `relay-provision.toml` from the boot partition (FAT, readable on any PC), then:

- sets the hostname (`hostname = ...`, or `edge-relay-<6 hex of the machine id>` if the image's
  default `edge-relay` is still in place);
- creates the relay on the data partition with `relay init` (server name from the file or
  `<hostname>.local`, upstream, listeners, `mesh.policy` "pinned" unless the file says
  `mesh_policy = "open"`), into a scratch directory renamed into place only
  when complete: a power cut leaves either no relay or a whole one, and an existing relay (its
  signing key above all) is never regenerated;
- creates the admin user with `relay user add --admin --password-stdin` (the password
  never in an argument list); a password missing from the file is
  generated and written to `relay-admin-password.txt` on the boot partition, and a password in
  the file is removed from it once used;
- writes /var/lib/edge-relay/provisioned, after which the unit no longer runs.

Every step is idempotent: an interrupted run is simply run again at the next boot.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import re
import secrets
import shutil
import socket
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path("/var/lib/edge-relay")
RELAY_DIR = DATA / "relay"
DONE = DATA / "provisioned"
BOOT_DIRS = (Path("/boot/efi"), Path("/boot/firmware"))
PROVISION_FILE = "relay-provision.toml"
PASSWORD_FILE = "relay-admin-password.txt"
RELAY = "/opt/edge-relay/venv/bin/relay"
DEFAULT_HOSTNAME = "edge-relay"
DEFAULT_MESH_POLICY = "pinned"
TOP_KEYS = {
    "hostname",
    "server_name",
    "upstream",
    "upstream_url",
    "verify_tls",
    "mesh_policy",
    "client_listen",
    "federation_listen",
    "admin",
}
ADMIN_KEYS = {"user", "password"}


class ProvisionError(Exception):
    pass


def log(message: str) -> None:
    print(f"provision: {message}", file=sys.stderr, flush=True)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    fsync_path(path.parent)


def boot_dir() -> Path | None:
    for d in BOOT_DIRS:
        if os.path.ismount(d):
            return d
    return None


def read_provision(boot: Path | None) -> dict[str, Any]:
    if boot is None or not (boot / PROVISION_FILE).is_file():
        log(f"no {PROVISION_FILE} on the boot partition: defaults")
        return {}
    path = boot / PROVISION_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{path}: {exc}") from exc
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ProvisionError(f"{path}: unknown keys {sorted(unknown)}")
    admin = data.get("admin", {})
    if not isinstance(admin, dict) or set(admin) - ADMIN_KEYS:
        raise ProvisionError(f"{path}: [admin] takes only {sorted(ADMIN_KEYS)}")
    log(f"read {path}")
    return data


def set_hostname(wanted: str | None) -> str:
    current = socket.gethostname()
    if wanted is None:
        if current not in (DEFAULT_HOSTNAME, "localhost", ""):
            return current
        machine_id = Path("/etc/machine-id").read_text().strip()
        wanted = f"{DEFAULT_HOSTNAME}-{machine_id[:6] or secrets.token_hex(3)}"
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", wanted):
        raise ProvisionError(f"hostname {wanted!r} is not a valid host name")
    write_atomic(Path("/etc/hostname"), wanted + "\n", 0o644)
    socket.sethostname(wanted)
    log(f"hostname {wanted}")
    return wanted


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str, stdin: str = "") -> Done:
    """`relay ARGS...`, in this process (the venv's Python): an interpreter start and the
    relay's imports cost seconds on a small board. `stdin` is what the command reads
    there (a password for `--password-stdin`: never in an argument list)."""
    from relay.cli import main as relay_main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                relay_main(list(args[1:]))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = saved_stdin
    return Done(code, out.getvalue(), err.getvalue())


def fsync_tree(top: Path) -> None:
    for root, _dirs, files in os.walk(top):
        for name in files:
            fsync_path(Path(root) / name)
        fsync_path(Path(root))


def chown_tree(top: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for root, _dirs, files in os.walk(top):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in files:
            os.chown(Path(root) / name, pw.pw_uid, pw.pw_gid)


def init_relay(cfg: dict[str, Any], hostname: str) -> None:
    if (RELAY_DIR / "relay.toml").exists():
        log(f"relay exists in {RELAY_DIR}: keys kept")
        return
    if RELAY_DIR.exists():
        raise ProvisionError(f"{RELAY_DIR} exists without relay.toml: refusing to touch it")
    scratch = DATA / "relay.new"
    shutil.rmtree(scratch, ignore_errors=True)
    server_name = str(cfg.get("server_name") or f"{hostname}.local")
    args = [
        RELAY,
        "init",
        "--data-dir",
        str(scratch),
        "--server-name",
        server_name,
        "--client-listen",
        str(cfg.get("client_listen", "0.0.0.0:8008")),
        "--federation-listen",
        str(cfg.get("federation_listen", "0.0.0.0:8448")),
    ]
    if cfg.get("upstream"):
        args += ["--upstream", str(cfg["upstream"])]
    if cfg.get("upstream_url"):
        args += ["--upstream-url", str(cfg["upstream_url"])]
    if cfg.get("verify_tls") is False:
        args.append("--no-verify-tls")
    # A box on a network it does not control federates only with servers it was told
    # about or approved (README, mesh.policy); `mesh_policy = "open"` opts out.
    args += ["--mesh-policy", str(cfg.get("mesh_policy", DEFAULT_MESH_POLICY))]
    done = run(*args)
    if done.returncode != 0:
        raise ProvisionError(f"relay init failed: {done.stderr.strip()}")
    log(done.stdout.strip())
    fsync_tree(scratch)
    os.replace(scratch, RELAY_DIR)
    fsync_path(DATA)


def add_admin(cfg: dict[str, Any], boot: Path | None) -> None:
    admin = cfg.get("admin", {})
    user = str(admin.get("user") or "admin")
    password = str(admin.get("password") or "")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(18)
    done = run(
        RELAY,
        *("user", "add", "--data-dir", str(RELAY_DIR), user, "--password-stdin", "--admin"),
        stdin=password + "\n",
    )
    if done.returncode != 0:
        if "already exists" in done.stderr:
            log(f"user {user} exists")
            return
        raise ProvisionError(f"relay user add failed: {done.stderr.strip()}")
    log(done.stdout.strip())
    if generated:
        where = boot if boot is not None else DATA
        write_atomic(where / PASSWORD_FILE, f"user: {user}\npassword: {password}\n")
        log(f"generated the password of {user}: see {PASSWORD_FILE} on the boot partition")


def scrub_password(boot: Path | None) -> None:
    """Remove a password written in the provisioning file now that it has been used."""
    if boot is None or not (boot / PROVISION_FILE).is_file():
        return
    path = boot / PROVISION_FILE
    text = path.read_text(encoding="utf-8")
    scrubbed = re.sub(r"(?m)^(\s*)password\s*=.*$", r"\1# password removed after first boot", text)
    if scrubbed != text:
        write_atomic(path, scrubbed)


def main() -> int:
    try:
        boot = boot_dir()
        cfg = read_provision(boot)
        hostname = set_hostname(cfg.get("hostname"))
        init_relay(cfg, hostname)
        add_admin(cfg, boot)
        chown_tree(RELAY_DIR, "relay")
        scrub_password(boot)
        os.sync()  # the FAT boot partition has no journal: everything on disk before "done"
        write_atomic(DONE, "provisioned\n", 0o644)
    except (ProvisionError, OSError) as exc:
        log(f"FAILED: {exc}")
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
