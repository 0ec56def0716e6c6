/**
 * How the interop scripts in this folder get a stock matrix-js-sdk client: log in with
 * m.login.password, and (for scripts that use the SDK's own sync loop) start the loop and
 * wait for its first processed sync, as Element does before showing anything.
 *
 * Import this module before "matrix-js-sdk" in a script: it imports ./node18.mjs first,
 * which must run before the SDK's modules are evaluated.
 */

import "./node18.mjs";
import { ClientEvent, createClient } from "matrix-js-sdk";

/**
 * Logs `user` (a localpart or a full user id) in at `baseUrl` and returns a MatrixClient
 * holding the new access token, user id and device id. Throws when the login response
 * lacks any of the three (the server's fault, named with what it sent).
 */
export async function login(baseUrl, user, password, deviceDisplayName) {
  const anon = createClient({ baseUrl });
  const res = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: deviceDisplayName,
  });
  if (!res.access_token || !res.user_id || !res.device_id) {
    const expected = "a login response with access_token, user_id and device_id";
    throw new Error(`expected ${expected}, saw ${JSON.stringify(res)}`);
  }
  return createClient({
    baseUrl,
    accessToken: res.access_token,
    userId: res.user_id,
    deviceId: res.device_id,
  });
}

/**
 * Starts `client`'s sync loop with `startOptions`, waits until its first sync is processed
 * (sync state PREPARED or SYNCING; rejects after `deadlineMs`), runs `work()` and returns
 * its result. The loop is stopped however that ends.
 */
export async function whileSyncing(client, startOptions, deadlineMs, work) {
  const firstSync = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no PREPARED sync state in time")), deadlineMs);
    client.on(ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await client.startClient(startOptions);
  try {
    await firstSync;
    return await work();
  } finally {
    client.stopClient();
  }
}
