"""The `relay` command: init, run, user, token, peers, status, media, backup, restore.

Every problem with a flag or a config file is one line on stderr naming it,
exit code 2, and nothing written.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

import relay
from relay.config import (
    CONFIG_FILE,
    DEFAULT_CLIENT_LISTEN,
    DEFAULT_FEDERATION_LISTEN,
    MESH_POLICIES,
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    parse_listen,
    render_config,
)
from relay.errors import MatrixError
from relay.events.ids import is_valid_server_name
from relay.operator import actions as operator
from relay.runtime import clock
from relay.runtime.identity import (
    IdentityError,
    new_signing_key,
    read_signing_key,
    write_self_signed_certificate,
    write_signing_key,
)
from store import Connection
from store import accounts as store_accounts
from store import db as store_db
from store import registration_tokens as store_tokens
from store.private_files import make_private_dir, write_private

log = logging.getLogger("relay")
T = TypeVar("T")

DATA_DIR_OPTION = click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The relay's data directory (config, keys, database).",
)


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"relay: error: {message}", err=True)
    sys.exit(code)


def _load(data_dir: Path) -> Config:
    try:
        return load_config(data_dir)
    except ConfigError as exc:
        _fail(str(exc))


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; the relay logs what matters itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(relay.__version__, prog_name="relay", message="%(prog)s %(version)s")
def cli() -> None:
    """edge-relay: a small Matrix homeserver for a box in the field."""


@cli.command()
@DATA_DIR_OPTION
@click.option("--server-name", required=True, help="This relay's Matrix server name.")
@click.option(
    "--client-listen",
    default=DEFAULT_CLIENT_LISTEN,
    show_default=True,
    help="HOST:PORT for the Client-Server API (plain HTTP).",
)
@click.option(
    "--federation-listen",
    default=DEFAULT_FEDERATION_LISTEN,
    show_default=True,
    help="HOST:PORT for the Server-Server API (TLS).",
)
@click.option("--upstream", default=None, help="Server name of the upstream homeserver.")
@click.option("--upstream-url", default=None, help="Base URL of the upstream's federation API.")
@click.option(
    "--ca-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM file of extra CAs trusted for outbound federation.",
)
@click.option(
    "--no-verify-tls", is_flag=True, help="Do not verify peers' TLS certificates (labs only)."
)
@click.option(
    "--open-registration",
    is_flag=True,
    help="Let anyone register an account (registration.mode = open; labs only).",
)
@click.option(
    "--mdns-interface",
    "mdns_interfaces",
    multiple=True,
    metavar="IFACE_OR_ADDR",
    help="Interface name or address for LAN discovery (mesh.interfaces); repeatable."
    " Default: every LAN interface.",
)
@click.option(
    "--mesh-policy",
    type=click.Choice(MESH_POLICIES),
    default="open",
    show_default=True,
    help="Whom to federate with (mesh.policy): anyone, or only the upstream, static servers,"
    " pinned peers and servers reached through them.",
)
def init(
    data_dir: Path,
    server_name: str,
    client_listen: str,
    federation_listen: str,
    upstream: str | None,
    upstream_url: str | None,
    ca_file: Path | None,
    no_verify_tls: bool,
    open_registration: bool,
    mdns_interfaces: tuple[str, ...],
    mesh_policy: str,
) -> None:
    """Create a new relay in DATA_DIR: config, signing key, TLS certificate, database."""
    # Validate everything before writing anything.
    if not is_valid_server_name(server_name):
        _fail(f"--server-name {server_name!r} is not a valid Matrix server name")
    try:
        parse_listen(client_listen, "--client-listen")
        parse_listen(federation_listen, "--federation-listen")
    except ConfigError as exc:
        _fail(str(exc))
    if ca_file is not None:
        if not ca_file.is_file():
            _fail(f"--ca-file {ca_file}: no such file")
        ca_file = ca_file.resolve()
    text = render_config(
        server_name=server_name,
        client_listen=client_listen,
        federation_listen=federation_listen,
        upstream=upstream,
        upstream_url=upstream_url,
        ca_file=str(ca_file) if ca_file else None,
        verify_tls=not no_verify_tls,
        registration="open" if open_registration else "closed",
        mdns_interfaces=mdns_interfaces,
        mesh_policy=mesh_policy,
    )
    try:
        config = config_from_dict(tomllib.loads(text), data_dir)
    except ConfigError as exc:
        _fail(str(exc))
    if data_dir.exists():
        if not data_dir.is_dir():
            _fail(f"{data_dir} exists and is not a directory")
        held = [
            p.name
            for p in (
                data_dir / CONFIG_FILE,
                config.signing_key_path,
                config.database_path,
                config.tls_certificate_path,
            )
            if p.exists()
        ]
        if held:
            _fail(f"{data_dir} already holds a relay ({', '.join(held)}); refusing to touch it")

    make_private_dir(data_dir)
    key = new_signing_key()
    write_signing_key(config.signing_key_path, key)
    write_self_signed_certificate(
        config.tls_certificate_path, config.tls_private_key_path, server_name
    )
    store_db.open_database(config.database_path, synchronous=config.synchronous).close()
    tmp = data_dir / (CONFIG_FILE + ".tmp")
    write_private(tmp, text.encode("utf-8"))
    os.replace(tmp, data_dir / CONFIG_FILE)
    click.echo(f"created relay {server_name} in {data_dir} (signing key {key.key_id})")


@cli.command()
@DATA_DIR_OPTION
def run(data_dir: Path) -> None:
    """Run the relay in the foreground; logs go to stderr. Stops on SIGTERM or SIGINT."""
    import trio

    from relay.node import serve_node

    config = _load(data_dir)
    try:
        read_signing_key(config.signing_key_path)
    except IdentityError as exc:
        _fail(str(exc))
    for path in (config.tls_certificate_path, config.tls_private_key_path):
        if not path.is_file():
            _fail(f"{path}: TLS file missing")
    _setup_logging(config.log_level)
    try:
        trio.run(serve_node, config)
    except store_db.SchemaTooNew as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot start: {exc}", 1)


@cli.group()
def user() -> None:
    """Manage local user accounts."""


@user.command("add")
@DATA_DIR_OPTION
@click.argument("localpart")
@click.option(
    "--password",
    default=None,
    help="The new user's password (visible to other local users in ps: prefer "
    "--password-stdin, or the prompt).",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input.",
)
@click.option("--admin", is_flag=True, help="Make the user a server admin.")
def user_add(
    data_dir: Path, localpart: str, password: str | None, password_stdin: bool, admin: bool
) -> None:
    """Create the local user LOCALPART (works while the relay runs). The password comes
    from --password-stdin, or a prompt on a terminal, so that it is not in argv."""
    config = _load(data_dir)
    password = _new_password(password, password_stdin)
    if not password:
        _fail("the password must not be empty")
    user_id = _user_id(config, localpart)
    password_hash = store_accounts.hash_password(operator.check_password(password))
    _act(
        config,
        lambda conn: operator.create_user_txn(
            conn,
            user_id=user_id,
            password_hash=password_hash,
            admin=admin,
            displayname=None,
            now_ms=clock.now_ms(),
        ),
    )
    click.echo(f"created user {user_id}{' (admin)' if admin else ''}")


def _user_id(config: Config, name: str) -> str:
    try:
        return operator.local_user_id(name, config.server_name)
    except MatrixError as exc:
        _fail(f"{name!r} is not a valid user localpart: {exc.message}")


@user.command("password")
@DATA_DIR_OPTION
@click.argument("localpart")
@click.option("--password", default=None, help="The new password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@click.option(
    "--keep-devices", is_flag=True, help="Do not log the user's devices out (default: log out)."
)
def user_password(
    data_dir: Path, localpart: str, password: str | None, password_stdin: bool, keep_devices: bool
) -> None:
    """Reset the password of LOCALPART; its devices are logged out unless --keep-devices."""
    config = _load(data_dir)
    password = _new_password(password, password_stdin)
    if not password:
        _fail("the password must not be empty")
    user_id = _user_id(config, localpart)
    password_hash = store_accounts.hash_password(operator.check_password(password))
    devices = _act(
        config,
        operator.reset_password_txn,
        user_id,
        password_hash,
        logout_devices=not keep_devices,
    )
    click.echo(f"password of {user_id} reset; {len(devices)} device(s) logged out")


@user.command("deactivate")
@DATA_DIR_OPTION
@click.argument("localpart")
def user_deactivate(data_dir: Path, localpart: str) -> None:
    """Deactivate LOCALPART: its password, devices and access tokens go; the user id stays
    taken."""
    config = _load(data_dir)
    user_id = _user_id(config, localpart)
    devices = _act(config, operator.deactivate_user_txn, user_id)
    click.echo(f"deactivated {user_id}; {len(devices)} device(s) logged out")


@user.command("list")
@DATA_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def user_list(data_dir: Path, as_json: bool) -> None:
    """List local users: admin, deactivated, created, last seen."""
    rows = _read(_load(data_dir), store_accounts.list_users)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no users")
    for row in rows:
        flags = [
            f for f, on in (("admin", row["is_admin"]), ("deactivated", row["deactivated"])) if on
        ]
        click.echo(
            f"{row['user_id']}  {' '.join(flags) or 'user'}  created {_when(row['created_ts'])}"
            f"  last seen {_when(row['last_seen_ts'])}"
        )


def _new_password(given: str | None, from_stdin: bool) -> str:
    """The password of `user add`: --password, one line of stdin, or a prompt."""
    if given is not None and from_stdin:
        _fail("give --password or --password-stdin, not both")
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if given is not None:
        return given
    if not sys.stdin.isatty():
        _fail("no password: use --password-stdin (or run on a terminal to be asked)")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@cli.group()
def token() -> None:
    """Manage registration tokens (used when registration.mode is "token")."""


@token.command("add")
@DATA_DIR_OPTION
@click.argument("token_text", metavar="[TOKEN]", required=False)
@click.option(
    "--uses", type=click.IntRange(min=1), default=None, help="How many registrations it allows."
)
@click.option(
    "--expires-in-hours",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Hours until it expires (default: never).",
)
def token_add(
    data_dir: Path, token_text: str | None, uses: int | None, expires_in_hours: float | None
) -> None:
    """Create a registration token and print it (a random one if TOKEN is omitted)."""
    config = _load(data_dir)
    try:
        token_text = (
            operator.random_token() if token_text is None else operator.check_token_text(token_text)
        )
    except MatrixError as exc:
        _fail(f"TOKEN: {exc.message}")
    expiry = None
    if expires_in_hours is not None:
        expiry = clock.now_ms() + int(expires_in_hours * 3_600_000)
    _act(config, operator.create_token_txn, token_text, uses, expiry)
    if config.registration != "token":
        click.echo(
            f"relay: note: registration.mode is {config.registration!r}; "
            'tokens are only asked for when it is "token"',
            err=True,
        )
    click.echo(token_text)


@token.command("list")
@DATA_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_list(data_dir: Path, as_json: bool) -> None:
    """List registration tokens with their uses and expiry. A token is stored hashed:
    the list shows the start of each ("hint"); `relay token add` printed the whole."""
    now = clock.now_ms()
    tokens = _read(_load(data_dir), store_tokens.list_tokens)
    rows = [operator.token_view(row, now) for row in tokens]
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no registration tokens")
    for row in rows:
        allowed = "unlimited" if row["uses_allowed"] is None else row["uses_allowed"]
        expiry = row["expiry_time"]
        expires = (
            "never"
            if expiry is None
            else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expiry / 1000))
        )
        state = "valid" if row["valid"] else "spent or expired"
        click.echo(
            f"{row['hint']}  used {row['completed']}/{allowed}"
            f" ({row['pending']} pending)  expires {expires}  {state}"
        )


@token.command("delete")
@DATA_DIR_OPTION
@click.argument("token_text", metavar="TOKEN")
def token_delete(data_dir: Path, token_text: str) -> None:
    """Delete a registration token (registrations in progress with it will fail)."""
    config = _load(data_dir)
    _act(config, operator.delete_token_txn, token_text)
    click.echo(f"deleted token {token_text}")


@cli.group()
def peers() -> None:
    """LAN peers found by mDNS: list them, approve or revoke their keys."""


def _peer_rows(config: Config) -> list[dict[str, Any]]:
    return _read(config, operator.peers_txn, config)


@peers.command("list")
@DATA_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def peers_list(data_dir: Path, as_json: bool) -> None:
    """List LAN peers: name, address, key fingerprint, status, last seen, reachable."""
    config = _load(data_dir)
    rows = _peer_rows(config)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no LAN peers seen")
    for row in rows:
        reach = "reachable" if row["reachable"] else "unreachable"
        click.echo(
            f"{row['name']}  {row['address']}  {row['status']}  {reach}"
            f"  last seen {_when(row['last_seen'])}\n"
            f"    fingerprint {row['fingerprint']}  ({row['reason']})"
        )


@peers.command("approve")
@DATA_DIR_OPTION
@click.argument("name")
def peers_approve(data_dir: Path, name: str) -> None:
    """Pin the key NAME serves now (check its fingerprint in `relay peers list` first)."""
    config = _load(data_dir)
    row = _act(config, operator.approve_peer_txn, name)
    click.echo(f"approved {name}: key {row['key_id']} fingerprint {row['fingerprint']}")


@peers.command("revoke")
@DATA_DIR_OPTION
@click.argument("name")
def peers_revoke(data_dir: Path, name: str) -> None:
    """Forget NAME's approval: the relay stops federating with it (config pins stay)."""
    config = _load(data_dir)
    _act(config, operator.revoke_peer_txn, name)
    note = " (still pinned in [mesh] trusted)" if name in config.mesh_trusted else ""
    click.echo(f"revoked {name}{note}")


def _open_db(config: Config) -> Connection:
    try:
        return store_db.open_database(config.database_path, synchronous=config.synchronous)
    except store_db.SchemaTooNew as exc:
        _fail(str(exc))


def _read(config: Config, fn: Callable[..., T], *args: Any) -> T:
    """`fn(conn, *args)` in one read transaction (a consistent snapshot) on the relay's
    database; the connection is closed afterwards."""
    conn = _open_db(config)
    try:
        with store_db.read(conn):
            return fn(conn, *args)
    finally:
        conn.close()


def _write(config: Config, fn: Callable[..., T], *args: Any) -> T:
    """`fn(conn, *args)` in one write transaction on the relay's database (safe while
    the relay runs: SQLite WAL, busy timeout); the connection is closed afterwards."""
    conn = _open_db(config)
    try:
        with store_db.write(conn):
            return fn(conn, *args)
    finally:
        conn.close()


def _act(config: Config, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """An operator action (relay.operator.actions) in one write transaction; its MatrixError
    becomes one line on stderr and exit code 1."""
    try:
        return _write(config, lambda conn: fn(conn, *args, **kwargs))
    except MatrixError as exc:
        _fail(exc.message, 1)


def _status(config: Config) -> dict[str, Any]:
    key = read_signing_key(config.signing_key_path)
    return _read(config, operator.status_txn, config, key)  # one snapshot


@cli.command()
@DATA_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(data_dir: Path, as_json: bool) -> None:
    """Show the relay's identity, listeners, counts, media and federation queues."""
    config = _load(data_dir)
    try:
        info = _status(config)
    except IdentityError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    click.echo(f"server name:  {info['server_name']}")
    click.echo(f"signing key:  {info['key_id']} {info['verify_key']}")
    click.echo(f"client:       {info['listeners']['client']}")
    click.echo(f"federation:   {info['listeners']['federation']}")
    click.echo(f"upstream:     {info['upstream'] or '(none)'}")
    counts = info["counts"]
    click.echo(
        f"counts:       {counts['users']} users, {counts['rooms']} rooms, {counts['events']} events"
    )
    database = info["database"]
    largest = ", ".join(f"{name} {rows}" for name, rows in list(database["rows"].items())[:3])
    click.echo(
        f"database:     schema {database['schema_version']}, {database['bytes']} bytes;"
        f" most rows: {largest}"
    )
    m = info["media"]
    click.echo(
        f"media:        {m['local_media']} local ({m['local_bytes']} bytes),"
        f" {m['remote_media']} remote cached ({m['remote_bytes']} bytes),"
        f" {m['thumbnails']} thumbnails ({m['thumbnail_bytes']} bytes)"
    )
    if info["disk_free_bytes"] is not None:
        click.echo(f"disk free:    {info['disk_free_bytes']} bytes")
    if not info["federation"]:
        click.echo("federation queues: empty")
    for name, dest in info["federation"].items():
        click.echo(f"  {name}: {_destination_line(dest)}")


@cli.group()
def media() -> None:
    """Manage the media store (uploads, thumbnails, the remote media cache)."""


@media.command("cleanup")
@DATA_DIR_OPTION
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Also drop cached remote media not used for this many days.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def media_cleanup(data_dir: Path, older_than_days: float | None, as_json: bool) -> None:
    """Shrink the remote media cache under media.remote_cache_max_bytes (least recently
    used first), drop what is older than --older-than-days, and remove files no row
    names. Local uploads are never removed. Safe while the relay runs."""
    from relay.media.blobs import BlobStore
    from relay.media.cleanup import cleanup_database

    config = _load(data_dir)
    report = cleanup_database(
        config.database_path,
        BlobStore(config.media_store),
        max_bytes=config.media.remote_cache_max_bytes,
        older_than_ms=None if older_than_days is None else int(older_than_days * 86_400_000),
        now_ms=clock.now_ms(),
        synchronous=config.synchronous,
    )
    result = report.as_dict()
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    click.echo(
        f"removed {result['media_removed']} cached media, {result['thumbnails_removed']} "
        f"thumbnails, {result['files_removed']} files ({result['bytes_freed']} bytes); "
        f"{result['remote_bytes_left']} bytes of remote media left in the cache"
    )


@cli.command()
@DATA_DIR_OPTION
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The archive to write (a .tar.gz; replaced if it exists).",
)
def backup(data_dir: Path, output: Path) -> None:
    """Write one archive of the relay (database, signing key, TLS key and certificate,
    config, media) with a manifest of checksums. Safe while the relay runs."""
    from relay.operator.backup import BackupError, write_backup

    config = _load(data_dir)
    try:
        summary = write_backup(config, output)
    except BackupError as exc:
        _fail(str(exc), 1)
    click.echo(
        f"backed up {summary.server_name} (key {summary.key_id}): {summary.files} files,"
        f" {summary.total_bytes} bytes, schema {summary.schema_version} -> {output}"
    )


@cli.command()
@DATA_DIR_OPTION
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
def restore(data_dir: Path, archive: Path) -> None:
    """Restore ARCHIVE (from `relay backup`) into DATA_DIR, which must be missing or
    empty. Every file is checked against the manifest; on any problem nothing is left."""
    from relay.operator.backup import BackupError, restore_backup

    try:
        summary = restore_backup(archive, data_dir)
    except BackupError as exc:
        _fail(str(exc), 1)
    click.echo(
        f"restored {summary.server_name} (key {summary.key_id}) into {data_dir}:"
        f" {summary.files} files, backup taken {_when(summary.created_ts)}"
    )


def _when(ts: int | None) -> str:
    if not ts:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts / 1000))


def _destination_line(dest: dict[str, Any]) -> str:
    if dest.get("since_ts") is None and dest.get("last_attempt_ts") is None:
        state = "not contacted yet"
    elif dest.get("reachable"):
        state = f"reachable since {_when(dest.get('since_ts'))}"
    else:
        state = f"UNREACHABLE since {_when(dest.get('since_ts'))}"
    return (
        f"{state}; {dest.get('queue_depth', 0)} queued; "
        f"last success {_when(dest.get('last_success_ts'))}"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's usage errors become one line and exit code 2."""
    try:
        rv = cli.main(args=argv, prog_name="relay", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(exc.format_message().replace("\n", " ") + hint)
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "), exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
