#!/usr/bin/env node
/**
 * Interop check: what a stock matrix-js-sdk (37.0.0) client shows of redacted events.
 *
 * matrix-js-sdk applies every m.room.redaction it gets from /sync to its target,
 * without asking whether the redaction's sender could redact it (as Element does),
 * so a server must not send it redactions that do not apply.
 *
 * The script logs in, runs the SDK's own sync loop (startClient, MemoryStore) until
 * the first sync is processed, paginates the room's live timeline back to its start,
 * and prints one JSON object: for each EVENT_ID given, whether the client holds it
 * and whether it shows it redacted, e.g.
 *   {"$a": {"found": true, "redacted": false}, "$b": {"found": true, "redacted": true}}
 * Exit 0 with that line; 1 with a message on failure.
 *
 * Usage: node js_redactions.mjs BASE_URL USER PASSWORD ROOM_ID EVENT_ID...
 */

import { ClientEvent, createClient, EventTimeline } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");

const DEADLINE_MS = 60000;

async function main() {
  const [baseUrl, user, password, roomId, ...eventIds] = process.argv.slice(2);
  if (!roomId || eventIds.length === 0) {
    throw new Error("usage: node js_redactions.mjs BASE_URL USER PASSWORD ROOM_ID EVENT_ID...");
  }
  const anon = createClient({ baseUrl });
  const res = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: "edge-relay interop (matrix-js-sdk redactions)",
  });
  const client = createClient({
    baseUrl,
    accessToken: res.access_token,
    userId: res.user_id,
    deviceId: res.device_id,
  });
  const prepared = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no PREPARED sync state in time")), DEADLINE_MS);
    client.on(ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await client.startClient({ initialSyncLimit: 100, lazyLoadMembers: false });
  try {
    await prepared;
    const room = client.getRoom(roomId);
    if (!room) throw new Error(`the client does not know room ${roomId}`);
    const live = room.getLiveTimeline();
    while (await client.paginateEventTimeline(live, { backwards: true, limit: 50 })) {
      if (!live.getPaginationToken(EventTimeline.BACKWARDS)) break;
    }
    const shown = {};
    for (const eventId of eventIds) {
      const event = room.findEventById(eventId);
      shown[eventId] = { found: Boolean(event), redacted: Boolean(event && event.isRedacted()) };
    }
    console.log(JSON.stringify(shown));
  } finally {
    client.stopClient();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[js-sdk redactions] ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
