#!/usr/bin/env node
/**
 * Interop scenario: two stock matrix-js-sdk (37.5.0) clients that sync ONLY with
 * Simplified Sliding Sync (MSC4186, the SDK's SlidingSync class at
 * /_matrix/client/unstable/org.matrix.simplified_msc3575/sync), as Element X does.
 *
 * What it proves, against the server at BASE_URL:
 *   1. both log in and start their sync loop on a sliding sync list (no /sync v2);
 *   2. A creates a room and invites B; B's list shows the invite and B joins;
 *   3. A sends a message; B's room model holds it, and B's reply reaches A's;
 *   4. B replies in a thread on A's message; A's room model has the thread, its reply;
 *   5. A edits the message; B's model shows the edit applied (m.new_content);
 *   6. B reacts; A's model has the reaction among the message's annotations.
 * Each step prints a line; on failure the script prints what it expected and exits 1.
 *
 * Usage: node js_sliding_sync.mjs BASE_URL USER_A PASSWORD_A USER_B PASSWORD_B
 */

import { ClientEvent, createClient, EventType, RelationType } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";
import { SlidingSyncSdk } from "matrix-js-sdk/lib/sliding-sync-sdk.js";

logger.setLevel("warn");

const DEADLINE_MS = 30000;
let currentStep = "start";

function step(name) {
  currentStep = name;
  console.log(`[js-sdk sliding sync] ${name}`);
}

async function until(what, check) {
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline) {
    const found = check();
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${currentStep}: expected ${what} within ${DEADLINE_MS} ms`);
}

async function start(baseUrl, user, password) {
  const anon = createClient({ baseUrl });
  const res = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: "edge-relay interop (matrix-js-sdk sliding sync)",
  });
  const client = createClient({
    baseUrl,
    accessToken: res.access_token,
    userId: res.user_id,
    deviceId: res.device_id,
  });
  const lists = new Map([
    [
      "all",
      {
        ranges: [[0, 19]],
        timeline_limit: 20,
        required_state: [["*", "*"]],
      },
    ],
  ]);
  const sliding = new SlidingSync(
    baseUrl,
    lists,
    { timeline_limit: 20, required_state: [["*", "*"]] },
    client,
    5000,
  );
  const syncing = new Promise((resolve) => {
    client.on(ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
    });
  });
  await client.startClient({ slidingSync: sliding, threadSupport: true });
  if (!(client.syncApi instanceof SlidingSyncSdk)) {
    throw new Error("the client is not syncing with sliding sync");
  }
  await syncing;
  return { client, sliding, userId: res.user_id };
}

function bodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === EventType.RoomMessage)
    .map((e) => e.getContent().body);
}

async function main() {
  const [baseUrl, userA, passwordA, userB, passwordB] = process.argv.slice(2);
  step("log in both users, start sliding sync");
  const a = await start(baseUrl, userA, passwordA);
  const b = await start(baseUrl, userB, passwordB);
  try {
    step("A creates a room and invites B; B sees the invite in its list and joins");
    const { room_id: roomId } = await a.client.createRoom({
      name: "Field team",
      preset: "private_chat",
      invite: [b.userId],
    });
    await until("B's client to hold the invite", () => {
      const room = b.client.getRoom(roomId);
      return room && room.getMyMembership() === "invite";
    });
    await b.client.joinRoom(roomId);
    await until("A to see B joined", () =>
      a.client.getRoom(roomId)?.getMember(b.userId)?.membership === "join",
    );

    step("A sends, B's room model holds it; B answers, A's holds that");
    const { event_id: rootId } = await a.client.sendTextMessage(roomId, "hello from A");
    await until("B to see A's message", () => bodies(b.client, roomId).includes("hello from A"));
    await b.client.sendTextMessage(roomId, "hello from B");
    await until("A to see B's message", () => bodies(a.client, roomId).includes("hello from B"));

    step("B replies in a thread on A's message; A's model has the thread");
    await b.client.sendMessage(roomId, rootId, { msgtype: "m.text", body: "in the thread" });
    await until("A's room to hold the thread with B's reply", () => {
      const thread = a.client.getRoom(roomId)?.getThread(rootId);
      return (
        thread &&
        thread.events.some((e) => e.getContent().body === "in the thread") &&
        thread.length >= 1
      );
    });

    step("A edits the message; B's model shows the edit");
    await a.client.sendMessage(roomId, {
      msgtype: "m.text",
      body: "* hello, edited",
      "m.new_content": { msgtype: "m.text", body: "hello, edited" },
      "m.relates_to": { rel_type: RelationType.Replace, event_id: rootId },
    });
    await until("B's copy of A's message to show the edit", () => {
      const event = b.client.getRoom(roomId)?.findEventById(rootId);
      return event && event.replacingEvent() && event.getContent().body === "hello, edited";
    });

    step("B reacts; A's model has the reaction");
    await b.client.sendEvent(roomId, EventType.Reaction, {
      "m.relates_to": { rel_type: RelationType.Annotation, event_id: rootId, key: "👍" },
    });
    await until("A's room to hold B's reaction on the message", () => {
      const relations = a.client
        .getRoom(roomId)
        ?.relations.getChildEventsForEvent(rootId, RelationType.Annotation, EventType.Reaction);
      return relations && relations.getRelations().some((e) => e.getSender() === b.userId);
    });
    step("done");
  } finally {
    a.client.stopClient();
    b.client.stopClient();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`FAILED: ${error.stack || error}`);
    process.exit(1);
  },
);
