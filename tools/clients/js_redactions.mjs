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

import { login, whileSyncing } from "./sdk_session.mjs";
import { EventTimeline } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");

const DEADLINE_MS = 60000;

async function main() {
  const [baseUrl, user, password, roomId, ...eventIds] = process.argv.slice(2);
  if (!roomId || eventIds.length === 0) {
    throw new Error("usage: node js_redactions.mjs BASE_URL USER PASSWORD ROOM_ID EVENT_ID...");
  }
  const deviceName = "edge-relay interop (matrix-js-sdk redactions)";
  const client = await login(baseUrl, user, password, deviceName);
  const startOptions = { initialSyncLimit: 100, lazyLoadMembers: false };
  const shown = await whileSyncing(client, startOptions, DEADLINE_MS, async () => {
    const room = client.getRoom(roomId);
    if (!room) throw new Error(`the client does not know room ${roomId}`);
    const live = room.getLiveTimeline();
    while (await client.paginateEventTimeline(live, { backwards: true, limit: 50 })) {
      if (!live.getPaginationToken(EventTimeline.BACKWARDS)) break;
    }
    const byEventId = {};
    for (const eventId of eventIds) {
      const event = room.findEventById(eventId);
      const redacted = Boolean(event && event.isRedacted());
      byEventId[eventId] = { found: Boolean(event), redacted };
    }
    return byEventId;
  });
  console.log(JSON.stringify(shown));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[js-sdk redactions] ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
