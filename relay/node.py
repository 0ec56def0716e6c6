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

from relay.accounts import Accounts
from relay.client.hierarchy import HierarchyPages
from relay.client.registration import registration_sessions
from relay.client.routes import client_app
from relay.client.synapse_admin import Nonces
from relay.client.uia import UiaSessions
from relay.config import Config
from relay.e2ee.device_keys import E2eKeys
from relay.e2ee.device_lists import DeviceLists
from relay.e2ee.key_backup import KeyBackup
from relay.e2ee.to_device import ToDevice
from relay.federation.backfill import Backfill
from relay.federation.catch_up import CatchUp
from relay.federation.client import FederationClient
from relay.federation.destinations import FetchBudget
from relay.federation.ingest import Ingest
from relay.federation.key_server import OwnKeys, certificate_file_sha256
from relay.federation.media_fetch import FederationMedia
from relay.federation.peer_policy import PeerPolicy
from relay.federation.remote_membership import RemoteMembership
from relay.federation.routes import federation_app
from relay.federation.sender import FederationSender
from relay.federation.server_keys import KeyRing
from relay.federation.user_keys import FederationRemoteKeys
from relay.media.repository import MediaRepository
from relay.push.delivery import PushDelivery
from relay.push.gateway import PushGateways, gateway_policy
from relay.push.pushers import Pushers
from relay.rooms.service import RoomService
from relay.runtime import memory
from relay.runtime.clock import now_ms
from relay.runtime.database import Database, open_database
from relay.runtime.housekeeping import Housekeeping
from relay.runtime.identity import SigningKey, read_signing_key
from relay.runtime.listener import GRACE_SECONDS, hypercorn_config, serve_listener
from relay.runtime.notifier import Notifier
from relay.runtime.ratelimit import RateLimiter
from relay.runtime.sdnotify import ready_and_watchdog
from relay.services import Services
from relay.sync.account_data import AccountDataService
from relay.sync.builder import SyncService
from relay.sync.devices import DeviceSync
from relay.sync.lazy_members import SentMembers
from relay.sync.presence import PresenceService
from relay.sync.receipts import ReceiptService
from relay.sync.shared import SharedReads
from relay.sync.sliding import SlidingSyncService
from relay.sync.typing_notices import TypingService
from relay.web.chat_client import chat_client_built
from relay.web.metrics import RequestMetrics, metrics_app
from store import events as store_events

log = logging.getLogger(__name__)


async def _watch_signals(shutdown: trio.Event, cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            shutdown.set()
            # The listeners drain for GRACE_SECONDS; then everything stops.
            cancel_scope.deadline = trio.current_time() + GRACE_SECONDS + 0.3
            return


def _tls_fingerprints(config: Config) -> tuple[str, ...]:
    """The SHA-256 of our federation certificate, for the signed key document (it binds the
    certificate to our key for LAN peers); none when there is no certificate file (tests
    that build services without a listener)."""
    try:
        return (certificate_file_sha256(config.tls_certificate_path),)
    except (OSError, ValueError):
        return ()


async def build_services(config: Config, database: Database, signing_key: SigningKey) -> Services:
    """The relay's services over an open database (also used in-process by tests): the one
    place where the graph of services is built and wired."""
    notifier = Notifier(await database.read(store_events.max_stream_ordering))
    own_keys = OwnKeys(config.server_name, signing_key, _tls_fingerprints(config))
    federation_client = FederationClient(
        config, signing_key, timeout=config.request_timeout_seconds
    )
    rooms = RoomService(database, config.server_name, signing_key, notifier)
    # End-to-end encryption.
    device_lists = DeviceLists(database, rooms, notifier, config.server_name)
    e2ee_keys = E2eKeys(database, device_lists, config.server_name)
    to_device = ToDevice(database, rooms, notifier, config.server_name)

    async def devices_deleted(user_id: str, device_ids: list[str]) -> None:
        await to_device.forget_devices(user_id, device_ids)
        await device_lists.local_changed(user_id, device_ids, deleted=True)

    async def device_created(user_id: str, device_id: str) -> None:
        await device_lists.local_changed(user_id, [device_id], deleted=False)

    accounts = Accounts(
        database,
        config.server_name,
        on_devices_deleted=devices_deleted,
        on_device_created=device_created,
    )
    # What /sync gathers, the device section included.
    typing = TypingService(notifier)
    presence = PresenceService(database, notifier)
    sync = SyncService(
        database,
        rooms,
        notifier,
        typing,
        presence,
        devices=DeviceSync(e2ee_keys, device_lists, to_device),
        shared=SharedReads(),
        sent_members=SentMembers(),
    )
    limits = config.rate_limits
    pushers = Pushers(database)
    push_delivery = PushDelivery(
        database,
        rooms,
        notifier,
        PushGateways(gateway_policy(config), verify=federation_client.ssl_context),
    )
    pushers.on_change = push_delivery.wake
    services = Services(
        config=config,
        database=database,
        signing_key=signing_key,
        own_keys=own_keys,
        started_ms=now_ms(),
        notifier=notifier,
        accounts=accounts,
        rooms=rooms,
        federation_client=federation_client,
        keyring=KeyRing(
            database,
            own_keys,
            federation_client,
            trusted_key_servers=config.trusted_key_servers,
            fetch_budget=FetchBudget(*limits["key_fetch"]),
        ),
        typing=typing,
        presence=presence,
        receipts=ReceiptService(database, notifier, edu_sink=rooms.send_edu),
        account_data=AccountDataService(database, notifier),
        sync=sync,
        sliding_sync=SlidingSyncService(sync),
        device_lists=device_lists,
        e2ee_keys=e2ee_keys,
        to_device=to_device,
        key_backup=KeyBackup(database),
        media=MediaRepository(database, config, remote=FederationMedia(federation_client)),
        login_limiter=RateLimiter(*limits["login"]),
        register_limiter=RateLimiter(*limits["register"]),
        send_limiter=RateLimiter(*limits["send"]),
        uia_register=registration_sessions(database),
        uia_account=UiaSessions(),
        shared_secret_nonces=Nonces(),
        hierarchy_pages=HierarchyPages(),
        peer_policy=PeerPolicy(config, database),
        pushers=pushers,
        push_delivery=push_delivery,
    )
    _add_federation_services(services)
    federation_client.peer_policy = services.peer_policy.allows
    return services


def _add_federation_services(services: Services) -> None:
    """Receiving PDUs, sending the outbox, joining and inviting across servers, fetching
    history (/backfill) for /messages: built over the services, then wired into them."""
    config = services.config
    ingest = Ingest(services, gap_cap=config.gap_fill_cap)
    sender = FederationSender(
        services,
        retry_min_s=config.retry_min_seconds,
        retry_max_s=config.retry_max_seconds,
        probe_interval_s=config.probe_interval_seconds,
    )
    services.ingest = ingest
    services.sender = sender
    services.remote_membership = RemoteMembership(services, ingest)
    services.backfill = Backfill(services, ingest)
    services.on_link_up = _both(
        CatchUp(services, ingest).catch_up, services.device_lists.on_link_up
    )
    services.keyring.on_keys_cached = ingest.keys_cached
    services.device_lists.remote = FederationRemoteKeys(services)
    services.rooms.outbox_listener = sender.check_backlog


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
    memory.limit_arenas()  # before the database starts its threads (relay/runtime/memory.py)
    if not config.verify_tls:
        log.warning(
            "federation.verify_tls is false: TLS certificates are NOT checked"
            " (except trusted mesh peers', which are pinned)"
        )
    async with open_database(config.database_path, synchronous=config.synchronous) as database:
        services = await build_services(config, database, signing_key)
        shutdown = trio.Event()
        async with _root_scope(services.federation_client) as root_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_signals, shutdown, root_scope)
                metrics = services.metrics
                await nursery.start(_serve_until, shutdown, services.sender.serve)
                await nursery.start(_serve_until, shutdown, services.sender.serve_monitor)
                await nursery.start(_serve_until, shutdown, services.ingest.serve_pending)
                housekeeping = Housekeeping(
                    database, interval_s=config.housekeeping_interval_seconds
                )
                await nursery.start(_serve_until, shutdown, housekeeping.serve)
                await nursery.start(_serve_until, shutdown, services.push_delivery.serve)
                await nursery.start(
                    serve_listener,
                    RequestMetrics(client_app(services), metrics, "client"),
                    hypercorn_config(config.client_listen, config.client_limits),
                    config.client_limits,
                    shutdown,
                )
                log.info("client API listening on http://%s", config.client_listen)
                log.info("operator page: http://%s/_relay/admin/", config.client_listen)
                if chat_client_built():
                    log.info("web chat client: http://%s/", config.client_listen)
                await nursery.start(
                    serve_listener,
                    RequestMetrics(federation_app(services), metrics, "federation"),
                    hypercorn_config(
                        config.federation_listen,
                        config.federation_limits,
                        certfile=str(config.tls_certificate_path),
                        keyfile=str(config.tls_private_key_path),
                    ),
                    config.federation_limits,
                    shutdown,
                )
                log.info("federation API listening on https://%s", config.federation_listen)
                if config.metrics_listen is not None:
                    await nursery.start(
                        serve_listener,
                        metrics_app(services, metrics),
                        hypercorn_config(config.metrics_listen, config.client_limits),
                        config.client_limits,
                        shutdown,
                    )
                    log.info("metrics on http://%s/metrics", config.metrics_listen)
                if config.mesh_enabled:
                    from relay.mesh.service import Mesh

                    await nursery.start(_serve_until, shutdown, Mesh(services).serve)
                log.info("relay %s ready (key %s)", config.server_name, signing_key.key_id)
                nursery.start_soon(ready_and_watchdog, shutdown)  # systemd: READY=1, WATCHDOG=1
                task_status.started(services)
        log.info("relay %s stopped", config.server_name)
