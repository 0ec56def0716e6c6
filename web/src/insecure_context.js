// What the page needs when the browser does not count its origin as secure: a phone on the
// kit's Wi-Fi opens http://10.x.y.z:8008/ (plain HTTP, not localhost), and browsers then
// hide WebCrypto (crypto.subtle) and service workers from the page. Hydrogen needs both:
// - crypto.subtle (hashes, HMAC, PBKDF2, HKDF, AES-CTR for attachments and key backup):
//   provided here from @noble/hashes and @noble/ciphers (audited, pure JS), for exactly the
//   algorithms Hydrogen asks for; anything else is refused as WebCrypto would.
// - its service worker, which adds the access token to authenticated media requests: here
//   the token goes on Hydrogen's own media requests instead, and pictures shown by URL are
//   fetched with it and shown from a blob.
// Loaded only on such an origin (main.js), as a chunk of its own.
import { ecb } from "@noble/ciphers/aes.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { pbkdf2Async } from "@noble/hashes/pbkdf2.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";

const MEDIA_PATH = "/_matrix/client/v1/media/";
const HASHES = { "SHA-256": sha256, "SHA-512": sha512 };

function notSupported(what) {
    return new DOMException(`${what} is not supported here`, "NotSupportedError");
}

function algorithmName(algorithm) {
    return typeof algorithm === "string" ? algorithm : algorithm?.name;
}

function hashOf(hash) {
    const found = HASHES[algorithmName(hash)];
    if (!found) throw notSupported(`hash ${algorithmName(hash)}`);
    return found;
}

function bytes(data) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError("expected an ArrayBuffer or a typed array");
}

function arrayBuffer(u8) {
    return u8.slice().buffer;
}

function fromBase64Url(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(base64 + "===".slice((base64.length + 3) % 4)), (c) => c.charCodeAt(0));
}

function toBase64Url(u8) {
    return btoa(String.fromCharCode(...u8)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

class SecretKey {
    constructor(algorithm, raw, extractable, usages) {
        this.type = "secret";
        this.algorithm = algorithm;
        this.extractable = extractable;
        this.usages = usages;
        this._raw = raw;
    }
}

function requireUsage(key, usage) {
    if (!(key instanceof SecretKey) || !key.usages.includes(usage)) {
        throw new DOMException(`key not usable to ${usage}`, "InvalidAccessError");
    }
}

// AES-CTR as WebCrypto defines it: only the rightmost `length` bits of the counter block
// count (and wrap); the rest stay as given. The keystream is the counter blocks run
// through AES (ECB, one block each), XORed onto the data.
function aesCtr(algorithm, key, data) {
    if (algorithmName(algorithm) !== "AES-CTR") throw notSupported(algorithmName(algorithm));
    const counter = bytes(algorithm.counter);
    const length = algorithm.length;
    if (counter.length !== 16 || !(length >= 1 && length <= 128)) {
        throw new DOMException("AES-CTR needs a 16-byte counter and length 1-128", "OperationError");
    }
    const input = bytes(data);
    const blocks = Math.ceil(input.length / 16);
    const start = counter.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
    const mask = (1n << BigInt(length)) - 1n;
    const counters = new Uint8Array(blocks * 16);
    for (let i = 0; i < blocks; i++) {
        let block = (start & ~mask) | ((start + BigInt(i)) & mask);
        for (let j = 15; j >= 0; j--, block >>= 8n) counters[i * 16 + j] = Number(block & 0xffn);
    }
    const keystream = ecb(key._raw, { disablePadding: true }).encrypt(counters);
    const output = new Uint8Array(input.length);
    for (let i = 0; i < input.length; i++) output[i] = input[i] ^ keystream[i];
    return output.buffer;
}

// The subset of SubtleCrypto Hydrogen calls, same signatures and results.
export const subtle = {
    async digest(algorithm, data) {
        return arrayBuffer(hashOf(algorithm)(bytes(data)));
    },
    async importKey(format, keyData, algorithm, extractable, usages) {
        let raw;
        if (format === "raw") raw = bytes(keyData).slice();
        else if (format === "jwk" && keyData?.kty === "oct") raw = fromBase64Url(keyData.k);
        else throw notSupported(`key format ${format}`);
        const described = typeof algorithm === "string" ? { name: algorithm } : { ...algorithm };
        return new SecretKey(described, raw, extractable, [...usages]);
    },
    async exportKey(format, key) {
        if (!key.extractable) throw new DOMException("key is not extractable", "InvalidAccessError");
        if (format === "raw") return arrayBuffer(key._raw);
        if (format === "jwk") {
            return {
                kty: "oct",
                k: toBase64Url(key._raw),
                alg: `A${key._raw.length * 8}CTR`,
                ext: true,
                key_ops: [...key.usages],
            };
        }
        throw notSupported(`key format ${format}`);
    },
    async generateKey(algorithm, extractable, usages) {
        if (algorithmName(algorithm) !== "AES-CTR") throw notSupported(algorithmName(algorithm));
        if (![128, 192, 256].includes(algorithm.length)) {
            throw new DOMException("AES key length must be 128, 192 or 256", "OperationError");
        }
        const raw = crypto.getRandomValues(new Uint8Array(algorithm.length / 8));
        return new SecretKey({ name: "AES-CTR", length: algorithm.length }, raw, extractable, [...usages]);
    },
    async sign(algorithm, key, data) {
        requireUsage(key, "sign");
        if (algorithmName(algorithm) !== "HMAC") throw notSupported(algorithmName(algorithm));
        return arrayBuffer(hmac(hashOf(key.algorithm.hash), key._raw, bytes(data)));
    },
    async verify(algorithm, key, signature, data) {
        requireUsage(key, "verify");
        if (algorithmName(algorithm) !== "HMAC") throw notSupported(algorithmName(algorithm));
        const expected = hmac(hashOf(key.algorithm.hash), key._raw, bytes(data));
        const given = bytes(signature);
        let diff = expected.length ^ given.length;
        for (let i = 0; i < expected.length; i++) diff |= expected[i] ^ (given[i] ?? 0);
        return diff === 0;
    },
    async encrypt(algorithm, key, data) {
        requireUsage(key, "encrypt");
        return aesCtr(algorithm, key, data);
    },
    async decrypt(algorithm, key, data) {
        requireUsage(key, "decrypt");
        return aesCtr(algorithm, key, data);
    },
    async deriveBits(algorithm, key, length) {
        requireUsage(key, "deriveBits");
        if (length % 8 !== 0) throw new DOMException("length must be whole bytes", "OperationError");
        const name = algorithmName(algorithm);
        if (name === "PBKDF2") {
            const options = { c: algorithm.iterations, dkLen: length / 8 };
            return arrayBuffer(await pbkdf2Async(hashOf(algorithm.hash), key._raw, bytes(algorithm.salt), options));
        }
        if (name === "HKDF") {
            const derived = hkdf(hashOf(algorithm.hash), key._raw, bytes(algorithm.salt), bytes(algorithm.info), length / 8);
            return arrayBuffer(derived);
        }
        throw notSupported(name);
    },
};

// Gives the page crypto.subtle when the browser withheld it.
export function provideSubtleCrypto() {
    if (window.crypto && !window.crypto.subtle) {
        Object.defineProperty(window.crypto, "subtle", { value: subtle, configurable: true });
    }
}

// Authenticates media requests without the service worker: Hydrogen's own requests for
// attachments get the Authorization header its other requests carry, and <img> elements
// pointing at media are fetched with it and shown from a blob URL.
export function authenticateMedia(platform) {
    let authorization = null;
    const request = platform.request;
    platform.request = (url, options = {}) => {
        const given = options.headers?.get?.("Authorization");
        if (given) authorization = given;
        if (!given && authorization && isMedia(url)) {
            const headers = new Map(options.headers ?? []);
            headers.set("Authorization", authorization);
            options = { ...options, headers };
        }
        return request(url, options);
    };
    const shown = new WeakMap(); // img -> the media URL it shows from a blob
    const show = async (img) => {
        const url = img.getAttribute("src");
        if (!authorization || !url || !isMedia(url) || shown.get(img) === url) return;
        shown.set(img, url);
        try {
            const response = await fetch(url, { headers: { Authorization: authorization } });
            if (!response.ok) return;
            const blobUrl = URL.createObjectURL(await response.blob());
            if (img.getAttribute("src") === url) {
                shown.set(img, blobUrl);
                img.src = blobUrl;
            } else {
                URL.revokeObjectURL(blobUrl);
            }
        } catch {
            shown.delete(img); // offline for a moment: tried again on the next change
        }
    };
    new MutationObserver((records) => {
        for (const record of records) {
            if (record.type === "attributes") show(record.target);
            for (const node of record.addedNodes ?? []) {
                if (node.nodeType !== Node.ELEMENT_NODE) continue;
                if (node.tagName === "IMG") show(node);
                node.querySelectorAll?.("img").forEach(show);
            }
        }
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["src"] });
}

function isMedia(url) {
    try {
        const parsed = new URL(url, window.location.href);
        return parsed.origin === window.location.origin && parsed.pathname.startsWith(MEDIA_PATH);
    } catch {
        return false;
    }
}
