#!/usr/bin/env node
/**
 * Interop scenario: a stock matrix-js-sdk (37.0.0) talks to a homeserver.
 *
 * What it proves: two users of an unmodified matrix-js-sdk can, against the
 * server at BASE_URL, do what Element does for a two-person chat:
 *
 *   1. both log in with m.login.password;
 *   2. A creates a room and invites B; B sees the invite in /sync and joins;
 *      A sees the join in /sync;
 *   3. A and B exchange N messages each, interleaved (A0 B0 A1 B1 ...);
 *      B's /sync delivers them in order, each exactly once;
 *   4. B paginates the whole history back with /messages (dir=b, limit 5, so
 *      several pages) from the end of the room to m.room.create, and finds
 *      every message exactly once, in send order;
 *   5. A sets a display name; B sees A's updated m.room.member in /sync and
 *      in A's profile;
 *   6. A starts typing; B sees m.typing naming A in /sync (ephemeral);
 *   7. B sends a read receipt for A's last message; A sees m.receipt in /sync;
 *   8. B leaves; A sees B's membership become "leave" in /sync.
 *
 * Sync is done with raw /sync requests through the SDK's own HTTP layer
 * (client.http.authedRequest): every other call is a stock MatrixClient
 * method. Each step prints a line; on failure the script prints what it
 * expected and what it saw, and exits 1. Exit 0 means the whole scenario
 * passed.
 *
 * Usage: node js_scenario.mjs BASE_URL USER_A PASSWORD_A USER_B PASSWORD_B [N]
 *   USER_* are localparts ("alice") or full user ids ("@alice:server").
 */

import { login } from "./sdk_session.mjs";
import { Direction, EventType, MatrixError, MatrixEvent, Method } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");

const SYNC_DEADLINE_MS = 20000;
const PAGE_LIMIT = 5;

class ScenarioFailure extends Error {
  constructor(step, expected, seen) {
    super(`${step}: expected ${expected}`);
    this.step = step;
    this.expected = expected;
    this.seen = seen;
  }
}

let currentStep = "start";

function step(name) {
  currentStep = name;
  console.log(`[js-sdk] ${name}`);
}

function fail(expected, seen) {
  throw new ScenarioFailure(currentStep, expected, seen);
}

function show(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 1);
  return text.length > 6000 ? `${text.slice(0, 6000)}\n... (${text.length} chars)` : text;
}

/** `user` logged in, with the /sync position this scenario advances by hand. */
async function participant(baseUrl, user, password) {
  const client = await login(baseUrl, user, password, "edge-relay interop (matrix-js-sdk)");
  return { name: user, userId: client.getUserId(), client, since: undefined };
}

/** One /sync request for `who`, advancing its since token. */
async function syncOnce(who, timeoutMs) {
  const params = { timeout: String(timeoutMs) };
  if (who.since) params.since = who.since;
  const res = await who.client.http.authedRequest(Method.Get, "/sync", params, undefined, {
    localTimeoutMs: timeoutMs + 15000,
  });
  if (typeof res.next_batch !== "string") fail("/sync to return a next_batch string", res);
  who.since = res.next_batch;
  return res;
}

/**
 * Sync `who` until `check(response)` returns a truthy value (returned).
 * On deadline, fails with `what` and the room sections of the syncs seen.
 */
async function syncUntil(who, what, check, roomId) {
  const deadline = Date.now() + SYNC_DEADLINE_MS;
  const seen = [];
  while (Date.now() < deadline) {
    const res = await syncOnce(who, 1000);
    const found = check(res);
    if (found) return found;
    const rooms = res.rooms ?? {};
    const part = roomId
      ? {
          join: rooms.join?.[roomId],
          invite: rooms.invite?.[roomId],
          leave: rooms.leave?.[roomId],
        }
      : rooms;
    if (JSON.stringify(part) !== "{}") seen.push(part);
  }
  fail(`${who.userId} to see ${what} in /sync within ${SYNC_DEADLINE_MS} ms`, {
    syncs_with_room_data: seen.slice(-5),
  });
}

function joinedRoom(res, roomId) {
  return res.rooms?.join?.[roomId];
}

function timelineEvents(res, roomId) {
  return joinedRoom(res, roomId)?.timeline?.events ?? [];
}

function stateAndTimeline(res, roomId) {
  const room = joinedRoom(res, roomId);
  return [...(room?.state?.events ?? []), ...(room?.timeline?.events ?? [])];
}

function memberEvent(events, userId, predicate) {
  return events.find(
    (e) => e.type === EventType.RoomMember && e.state_key === userId && predicate(e.content ?? {}),
  );
}

async function main(argv) {
  if (argv.length < 5 || argv.length > 6) {
    console.error(
      "usage: node js_scenario.mjs BASE_URL USER_A PASSWORD_A USER_B PASSWORD_B [N]",
    );
    return 2;
  }
  const [baseUrl, userA, passwordA, userB, passwordB] = argv;
  const n = argv.length === 6 ? Number(argv[5]) : 20;

  step(`log in ${userA} and ${userB} at ${baseUrl}`);
  const a = await participant(baseUrl, userA, passwordA);
  const b = await participant(baseUrl, userB, passwordB);
  if (a.userId === b.userId) fail("two different users", [a.userId, b.userId]);

  step("initial /sync for both");
  await syncOnce(a, 0);
  await syncOnce(b, 0);

  step("A creates a room and invites B");
  const { room_id: roomId } = await a.client.createRoom({
    name: "interop js-sdk",
    preset: "private_chat",
  });
  if (typeof roomId !== "string" || !roomId.startsWith("!")) fail("a room id", roomId);
  await a.client.invite(roomId, b.userId);

  step("B sees the invite in /sync");
  await syncUntil(
    b,
    `an invite to ${roomId}`,
    (res) => {
      const events = res.rooms?.invite?.[roomId]?.invite_state?.events ?? [];
      return memberEvent(events, b.userId, (c) => c.membership === "invite");
    },
    roomId,
  );

  step("B joins; A sees the join");
  await b.client.joinRoom(roomId);
  await syncUntil(
    a,
    `${b.userId} joined`,
    (res) => memberEvent(stateAndTimeline(res, roomId), b.userId, (c) => c.membership === "join"),
    roomId,
  );

  step(`A and B exchange ${n} messages each, interleaved`);
  const sent = []; // [{event_id, body}] in send order
  for (let i = 0; i < n; i++) {
    for (const [who, tag] of [
      [a, "A"],
      [b, "B"],
    ]) {
      const body = `${tag} message ${i}`;
      const res = await who.client.sendMessage(roomId, { msgtype: "m.text", body });
      if (typeof res.event_id !== "string") fail(`an event_id for "${body}"`, res);
      sent.push({ event_id: res.event_id, body });
    }
  }
  const sentIds = sent.map((m) => m.event_id);
  if (new Set(sentIds).size !== sentIds.length) fail("distinct event ids for every send", sentIds);

  step("B's /sync delivers the messages in order, each once");
  const synced = [];
  await syncUntil(
    b,
    `the last message ${sentIds.at(-1)}`,
    (res) => {
      for (const e of timelineEvents(res, roomId)) {
        if (e.type === EventType.RoomMessage) synced.push(e.event_id);
      }
      return synced.includes(sentIds.at(-1));
    },
    roomId,
  );
  // A limited sync may skip older messages, but what arrives must be in order, once each.
  const syncedOurs = synced.filter((id) => sentIds.includes(id));
  const expectedTail = sentIds.slice(sentIds.length - syncedOurs.length);
  if (JSON.stringify(syncedOurs) !== JSON.stringify(expectedTail)) {
    fail("synced messages to be a suffix of the sent ones, in order, no duplicates", {
      sent: sentIds,
      synced: syncedOurs,
    });
  }

  step(`B paginates the whole history back with /messages (limit ${PAGE_LIMIT})`);
  const pages = [];
  const history = []; // newest first
  let from = b.since;
  let sawCreate = false;
  for (let page = 0; page < 200; page++) {
    const res = await b.client.createMessagesRequest(roomId, from, PAGE_LIMIT, Direction.Backward);
    const chunk = res.chunk ?? [];
    pages.push({ start: res.start, end: res.end, events: chunk.map((e) => e.type) });
    if (chunk.length > PAGE_LIMIT) fail(`at most ${PAGE_LIMIT} events per page`, pages);
    for (const e of chunk) {
      if (e.type === EventType.RoomMessage) history.push({ event_id: e.event_id, body: e.content?.body });
      if (e.type === EventType.RoomCreate) sawCreate = true;
    }
    if (!res.end || chunk.length === 0) break;
    if (res.end === from) fail("the end token to move on between pages", pages);
    from = res.end;
  }
  history.reverse();
  if (!sawCreate) fail("pagination to reach m.room.create", pages);
  if (pages.length < 3) fail("several pages of history", pages);
  if (JSON.stringify(history) !== JSON.stringify(sent)) {
    fail("every message exactly once, in send order", { sent, paginated: history, pages });
  }
  console.log(`[js-sdk]   ${history.length} messages over ${pages.length} pages`);

  step("A sets a display name; B sees the updated member event");
  // Unique per run: setting the same name again need not produce a new member event.
  const displayName = `A (js-sdk ${Date.now().toString(36)})`;
  await a.client.setDisplayName(displayName);
  await syncUntil(
    b,
    `${a.userId}'s m.room.member with displayname "${displayName}"`,
    (res) =>
      memberEvent(
        stateAndTimeline(res, roomId),
        a.userId,
        (c) => c.membership === "join" && c.displayname === displayName,
      ),
    roomId,
  );
  const profile = await b.client.getProfileInfo(a.userId);
  if (profile.displayname !== displayName) fail(`profile displayname "${displayName}"`, profile);

  step("A starts typing; B sees m.typing");
  await a.client.sendTyping(roomId, true, 20000);
  await syncUntil(
    b,
    `m.typing with ${a.userId}`,
    (res) =>
      (joinedRoom(res, roomId)?.ephemeral?.events ?? []).find(
        (e) => e.type === "m.typing" && (e.content?.user_ids ?? []).includes(a.userId),
      ),
    roomId,
  );
  await a.client.sendTyping(roomId, false, 0);

  step("B sends a read receipt; A sees m.receipt");
  const lastFromA = [...sent].reverse().find((m) => m.body.startsWith("A "));
  const readEvent = new MatrixEvent({
    event_id: lastFromA.event_id,
    room_id: roomId,
    type: EventType.RoomMessage,
    sender: a.userId,
  });
  await b.client.sendReadReceipt(readEvent);
  await syncUntil(
    a,
    `m.receipt m.read by ${b.userId} on ${lastFromA.event_id}`,
    (res) =>
      (joinedRoom(res, roomId)?.ephemeral?.events ?? []).find(
        (e) => e.type === "m.receipt" && e.content?.[lastFromA.event_id]?.["m.read"]?.[b.userId],
      ),
    roomId,
  );

  step("B leaves; A sees the leave");
  await b.client.leave(roomId);
  await syncUntil(
    a,
    `${b.userId}'s membership "leave"`,
    (res) => memberEvent(stateAndTimeline(res, roomId), b.userId, (c) => c.membership === "leave"),
    roomId,
  );

  console.log("[js-sdk] scenario passed");
  return 0;
}

function report(err) {
  if (err instanceof ScenarioFailure) {
    console.log(`[js-sdk] FAILED at step: ${err.step}`);
    console.log(`expected: ${err.expected}`);
    console.log(`seen:\n${show(err.seen)}`);
  } else if (err instanceof MatrixError) {
    console.log(`[js-sdk] FAILED at step: ${currentStep}`);
    console.log(`expected: a successful response from ${err.url ?? "the server"}`);
    console.log(`seen: HTTP ${err.httpStatus} ${err.errcode ?? ""} ${show(err.data ?? err.message)}`);
  } else {
    console.log(`[js-sdk] FAILED at step: ${currentStep}`);
    console.log(`error: ${err?.stack ?? err}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    report(err);
    process.exit(1);
  },
);
