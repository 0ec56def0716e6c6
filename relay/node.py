"""One relay process: the root trio nursery and the services in it.

Services start in dependency order (database, listeners) with
`nursery.start`, so "started" means "ready". SIGTERM or SIGINT cancels the
root scope; the listeners get a short grace period to finish replies.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from relay.accounts import Accounts
from relay.client.routes import client_app
from relay.config import Config, Listen
from relay.e2ee.device_keys import E2eKeys
from relay.e2ee.device_lists import DeviceLists
from relay.e2ee.key_backup import KeyBackup
from relay.e2ee.to_device import ToDevice
from relay.federation.backfill import Backfill
from relay.federation.catch_up import CatchUp
from relay.federation.client import FederationClient
from relay.federation.ingest import Ingest
from relay.federation.key_server import OwnKeys
from relay.federation.media_fetch import FederationMedia
from relay.federation.remote_membership import RemoteMembership
from relay.federation.routes import federation_app
from relay.federation.sender import FederationSender
from relay.federation.server_keys import KeyRing
from relay.federation.user_keys import FederationRemoteKeys
from relay.media.repository import MediaRepository
from relay.rooms.service import RoomService
from relay.runtime.clock import now_ms
from relay.runtime.database import Database, open_database
from relay.runtime.housekeeping import Housekeeping
from relay.runtime.identity import SigningKey, read_signing_key
from relay.runtime.notifier import Notifier
from relay.runtime.ratelimit import RateLimiter
from relay.runtime.sdnotify import ready_and_watchdog
from relay.services import Services
from relay.sync.account_data import AccountDataService
from relay.sync.builder import SyncService
from relay.sync.devices import DeviceSync
from relay.sync.presence import PresenceService
from relay.sync.receipts import ReceiptService
from relay.sync.typing_notices import TypingService
from store import events as store_events

log = logging.getLogger(__name__)

GRACE_SECONDS = 1.0
CLIENT_KEEPALIVE_S = 75
#: Idle federation connections stay open this long: longer than Synapse keeps its own
#: pooled ones (120 s) and than its listener was measured to keep an idle one (700 s, no
#: close seen), so a peer on a slow link never pays a new TLS handshake because of us.
FEDERATION_KEEPALIVE_S = 900


def _hypercorn_config(
    listen: Listen,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    keep_alive_s: float = CLIENT_KEEPALIVE_S,
):
    hc = HypercornConfig()
    hc.bind = [str(listen)]
    hc.certfile = certfile
    hc.keyfile = keyfile
    hc.graceful_timeout = GRACE_SECONDS
    hc.accesslog = None
    hc.errorlog = logging.getLogger("relay.runtime.http.server")
    hc.keep_alive_timeout = keep_alive_s
    return hc


async def _serve_listener(
    name: str,
    app: Any,
    hc: HypercornConfig,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(app, hc, shutdown_trigger=shutdown.wait, task_status=task_status)


async def _watch_signals(shutdown: trio.Event, cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            shutdown.set()
            # The listeners drain for GRACE_SECONDS; then everything stops.
            cancel_scope.deadline = trio.current_time() + GRACE_SECONDS + 0.3
            return


async def build_services(config: Config, database: Database, signing_key: SigningKey) -> Services:
    """The relay's services over an open database (also used in-process by tests)."""
    notifier = Notifier(await database.read(store_events.max_stream_ordering))
    own_keys = OwnKeys(config.server_name, signing_key)
    federation_client = FederationClient(
        config, signing_key, timeout=config.request_timeout_seconds
    )
    services = Services(
        config=config,
        database=database,
        signing_key=signing_key,
        own_keys=own_keys,
        started_ms=now_ms(),
        notifier=notifier,
        accounts=Accounts(database, config.server_name),
        rooms=RoomService(database, config.server_name, signing_key, notifier),
        federation_client=federation_client,
        keyring=KeyRing(
            database,
            own_keys,
            federation_client,
            trusted_key_servers=config.trusted_key_servers,
        ),
    )
    _add_sync_services(services)
    _add_e2e_services(services)
    _add_federation_services(services)
    services.extra["media"] = MediaRepository(
        database, config, remote=FederationMedia(federation_client)
    )
    for action, (per_second, burst) in config.rate_limits.items():
        services.extra[f"{action}_limiter"] = RateLimiter(per_second, burst)
    return services


def _add_federation_services(services: Services) -> None:
    """Receiving PDUs, sending the outbox, joining and inviting across servers, fetching
    history (/backfill) for /messages."""
    config = services.config
    ingest = Ingest(services, gap_cap=config.gap_fill_cap)
    sender = FederationSender(
        services,
        retry_min_s=config.retry_min_seconds,
        retry_max_s=config.retry_max_seconds,
        probe_interval_s=config.probe_interval_seconds,
    )
    services.extra["ingest"] = ingest
    services.keyring.on_keys_cached = ingest.keys_cached
    services.extra["sender"] = sender
    services.extra["remote_membership"] = RemoteMembership(services, ingest)
    services.extra["backfill"] = Backfill(services, ingest)
    services.extra["on_link_up"] = _both(
        CatchUp(services, ingest).catch_up, services.extra["device_lists"].on_link_up
    )
    services.extra["device_lists"].remote = FederationRemoteKeys(services)
    services.extra["receipts"].edu_sink = services.rooms.send_edu
    services.rooms.outbox_listener = sender.check_backlog


def _add_sync_services(services: Services) -> None:
    """Typing, presence, receipts, account data and the sync builder over them."""
    database, notifier = services.database, services.notifier
    typing = TypingService(notifier)
    presence = PresenceService(database, notifier)
    services.extra["typing"] = typing
    services.extra["presence"] = presence
    services.extra["receipts"] = ReceiptService(database, notifier)
    services.extra["account_data"] = AccountDataService(database, notifier)
    services.extra["sync"] = SyncService(database, services.rooms, notifier, typing, presence)


def _add_e2e_services(services: Services) -> None:
    """Keys, device lists, to-device messages, key backup, and their part of /sync."""
    database, notifier, rooms = services.database, services.notifier, services.rooms
    device_lists = DeviceLists(database, rooms, notifier, services.server_name)
    keys = E2eKeys(database, device_lists, services.server_name)
    to_device = ToDevice(database, rooms, notifier, services.server_name)
    services.extra["device_lists"] = device_lists
    services.extra["e2e"] = keys
    services.extra["to_device"] = to_device
    services.extra["key_backup"] = KeyBackup(database)
    services.extra["sync"].devices = DeviceSync(keys, device_lists, to_device)

    async def devices_deleted(user_id: str, device_ids: list[str]) -> None:
        await to_device.forget_devices(user_id, device_ids)
        await device_lists.local_changed(user_id, device_ids, deleted=True)

    services.accounts.on_devices_deleted = devices_deleted


def _both(first: Any, second: Any) -> Any:
    """Two link-up callbacks as one (the sender calls one)."""

    async def both(destination: str) -> None:
        await first(destination)
        await second(destination)

    return both


@asynccontextmanager
async def _root_scope(federation_client: FederationClient) -> AsyncIterator[trio.CancelScope]:
    """The node's root cancel scope; however it ends, the federation client's connections
    are closed (shielded, for at most a second)."""
    try:
        with trio.CancelScope() as scope:
            yield scope
    finally:
        with trio.move_on_after(1.0, shield=True):
            await federation_client.aclose()


async def _serve_until(
    shutdown: trio.Event,
    serve_fn: Any,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a background service until shutdown (it never returns on its own)."""
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_fn)
        task_status.started()
        await shutdown.wait()
        nursery.cancel_scope.cancel()


async def serve_node(
    config: Config, *, task_status: trio.TaskStatus[Services] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the relay described by `config` until cancelled or signalled."""
    signing_key = read_signing_key(config.signing_key_path)
    if not config.verify_tls:
        log.warning("federation.verify_tls is false: peers' TLS certificates are NOT checked")
    async with open_database(config.database_path, synchronous=config.synchronous) as database:
        services = await build_services(config, database, signing_key)
        shutdown = trio.Event()
        async with _root_scope(services.federation_client) as root_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_signals, shutdown, root_scope)
                sender = services.extra["sender"]
                await nursery.start(_serve_until, shutdown, sender.serve)
                await nursery.start(_serve_until, shutdown, sender.serve_monitor)
                ingest = services.extra["ingest"]
                await nursery.start(_serve_until, shutdown, ingest.serve_pending)
                housekeeping = Housekeeping(
                    database, interval_s=config.housekeeping_interval_seconds
                )
                await nursery.start(_serve_until, shutdown, housekeeping.serve)
                await nursery.start(
                    _serve_listener,
                    "client",
                    client_app(services),
                    _hypercorn_config(config.client_listen),
                    shutdown,
                )
                log.info("client API listening on http://%s", config.client_listen)
                await nursery.start(
                    _serve_listener,
                    "federation",
                    federation_app(services),
                    _hypercorn_config(
                        config.federation_listen,
                        certfile=str(config.tls_certificate_path),
                        keyfile=str(config.tls_private_key_path),
                        keep_alive_s=FEDERATION_KEEPALIVE_S,
                    ),
                    shutdown,
                )
                log.info("federation API listening on https://%s", config.federation_listen)
                if config.mesh_enabled:
                    from relay.mesh.service import Mesh

                    await nursery.start(_serve_until, shutdown, Mesh(services).serve)
                log.info("relay %s ready (key %s)", config.server_name, signing_key.key_id)
                nursery.start_soon(ready_and_watchdog, shutdown)  # systemd: READY=1, WATCHDOG=1
                task_status.started(services)
        log.info("relay %s stopped", config.server_name)
