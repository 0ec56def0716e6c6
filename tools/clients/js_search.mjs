#!/usr/bin/env node
/**
 * Interop check: server-side message search as Element runs it in an unencrypted room.
 *
 * Element's search box calls the SDK's `search` with Element's own body: order_by
 * "recent", a filter of the room with `limit: 10`, and one event of context each side
 * with the senders' profiles; it renders each result with its context through
 * `processRoomEventsSearch` and loads more with `backPaginateRoomEventsSearch` while
 * `next_batch` is given. This script does exactly that with a stock matrix-js-sdk
 * (37.0.0), after the SDK's own first sync (so results meet the room's state, as in
 * Element), and prints one JSON object:
 *   {"count": N, "pages": P, "results": [{"body", "sender_name", "before", "after"}...],
 *    "highlights": [...]}
 * Exit 0 with that line; 1 with a message on failure.
 *
 * Usage: node js_search.mjs BASE_URL USER PASSWORD ROOM_ID TERM
 */

import { login, whileSyncing } from "./sdk_session.mjs";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");

const DEADLINE_MS = 60000;
const SEARCH_LIMIT = 10; // Element's

async function main() {
  const [baseUrl, user, password, roomId, term] = process.argv.slice(2);
  if (!term) throw new Error("usage: node js_search.mjs BASE_URL USER PASSWORD ROOM_ID TERM");
  const client = await login(baseUrl, user, password, "edge-relay interop (matrix-js-sdk search)");
  const shown = await whileSyncing(client, { initialSyncLimit: 20 }, DEADLINE_MS, async () => {
    const body = {
      search_categories: {
        room_events: {
          search_term: term,
          filter: { limit: SEARCH_LIMIT, rooms: [roomId] },
          order_by: "recent",
          event_context: { before_limit: 1, after_limit: 1, include_profile: true },
        },
      },
    };
    const searchResults = { _query: body, results: [], highlights: [] };
    await client.search({ body }).then((r) => client.processRoomEventsSearch(searchResults, r));
    let pages = 1;
    while (searchResults.next_batch && pages < 20) {
      await client.backPaginateRoomEventsSearch(searchResults);
      pages += 1;
    }
    const results = searchResults.results.map((result) => {
      const context = result.context;
      const event = context.getEvent();
      const timeline = context.getTimeline();
      const ourIndex = context.getOurEventIndex();
      const bodies = (events) => events.map((e) => e.getContent().body);
      return {
        body: event.getContent().body,
        sender_name: event.sender ? event.sender.name : null,
        before: bodies(timeline.slice(0, ourIndex)),
        after: bodies(timeline.slice(ourIndex + 1)),
      };
    });
    return { count: searchResults.count, pages, results, highlights: searchResults.highlights };
  });
  console.log(JSON.stringify(shown));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[js-sdk search] ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
