// Run in a secure page by test_insecure_context_crypto.py: each operation through the
// stand-in (the chunk's `subtle`) and through the browser's WebCrypto; hex of both.
(async (module) => {
    const standIn = (await import(module)).subtle;
    const native = crypto.subtle;
    const enc = new TextEncoder();
    const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
    const random = (n) => crypto.getRandomValues(new Uint8Array(n));
    const results = {};
    const both = async (name, run) => {
        const [ours, theirs] = [await run(standIn), await run(native)];
        results[name] = [typeof ours === "boolean" ? ours : hex(ours), typeof theirs === "boolean" ? theirs : hex(theirs)];
    };
    const data = random(1000);
    for (const hash of ["SHA-256", "SHA-512"]) {
        await both(`digest ${hash}`, (s) => s.digest(hash, data));
        const key = random(32);
        const hmac = { name: "HMAC", hash: { name: hash } };
        await both(`hmac ${hash}`, async (s) => s.sign(hmac, await s.importKey("raw", key, hmac, false, ["sign"]), data));
        const mac = await native.sign(hmac, await native.importKey("raw", key, hmac, false, ["sign"]), data);
        await both(`hmac verify ${hash}`, async (s) => s.verify(hmac, await s.importKey("raw", key, hmac, false, ["verify"]), mac, data));
        const bad = new Uint8Array(mac); bad[0] ^= 1;
        await both(`hmac refuses ${hash}`, async (s) => s.verify(hmac, await s.importKey("raw", key, hmac, false, ["verify"]), bad, data));
        const pbkdf2 = { name: "PBKDF2", salt: random(16), iterations: 1000, hash };
        await both(`pbkdf2 ${hash}`, async (s) => s.deriveBits(pbkdf2, await s.importKey("raw", enc.encode("passphrase"), { name: "PBKDF2" }, false, ["deriveBits"]), 256));
        const hkdf = { name: "HKDF", salt: random(32), info: enc.encode("m.cross_signing"), hash };
        await both(`hkdf ${hash}`, async (s) => s.deriveBits(hkdf, await s.importKey("raw", key, { name: "HKDF" }, false, ["deriveBits"]), 512));
    }
    const aesKey = random(32);
    const aes = { name: "AES-CTR", counter: random(16), length: 64 };
    aes.counter.fill(0xff, 8);  // the low 64 bits about to wrap: the counter carries the same way
    await both("aes-ctr raw", async (s) => s.encrypt(aes, await s.importKey("raw", aesKey, aes, false, ["encrypt"]), data));
    const jwk = await native.exportKey("jwk", await native.importKey("raw", aesKey, aes, true, ["encrypt", "decrypt"]));
    await both("aes-ctr jwk", async (s) => s.decrypt(aes, await s.importKey("jwk", jwk, aes, false, ["decrypt"]), data));
    const generated = await standIn.exportKey("jwk", await standIn.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]));
    await both("generated key imports natively", async (s) => s.encrypt(aes, await s.importKey("jwk", generated, aes, false, ["encrypt"]), data));
    return results;
})
