// Debian 12's Node.js is 18, where globalThis.crypto is not defined in an ES module;
// matrix-js-sdk reads it (crypto.getRandomValues). Node 20 and newer define it. Imported
// first by sdk_session.mjs, which the scripts import before the SDK, so it runs before the
// SDK's modules are evaluated.
import { webcrypto } from "node:crypto";

globalThis.crypto ??= webcrypto;
