// Builds the chat client the relay serves at / into relay/web/chat_client_build/, offline:
// Hydrogen (hydrogen-view-sdk) and its theme bundled by esbuild, olm copied beside it.
// Every file under assets/ carries a hash of its bytes in its name (the relay serves them as
// immutable); index.html and sw.js keep their names (served no-cache). Text files get a .gz
// twin so the relay can send them precompressed.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "relay", "web", "chat_client_build");
const assets = join(out, "assets");
const modules = join(here, "node_modules");

rmSync(out, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

function hashed(name, bytes) {
    const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 10);
    const ext = extname(name);
    return `${basename(name, ext)}-${hash}${ext}`;
}

function emitAsset(name, bytes) {
    const file = hashed(name, bytes);
    writeFileSync(join(assets, file), bytes);
    return `/assets/${file}`;
}

// olm: the wasm build and its loader script, loaded by Hydrogen at run time.
const olmDir = join(modules, "@matrix-org", "olm");
const olmJs = emitAsset("olm.js", readFileSync(join(olmDir, "olm.js")));
const olmWasm = emitAsset("olm.wasm", readFileSync(join(olmDir, "olm.wasm")));

// The download sandbox (an iframe that saves decrypted attachments): its inline script moves
// to a file of its own so that the sandbox too runs under a CSP with no inline script.
const sdkAssets = join(modules, "hydrogen-view-sdk", "asset-build", "assets");
const sandbox = readFileSync(join(sdkAssets, "download-sandbox.html"), "utf8");
const inline = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(sandbox);
if (!inline) throw new Error("download-sandbox.html: no inline script found");
const sandboxJs = emitAsset("download-sandbox.js", inline[1]);
const sandboxHtml = emitAsset(
    "download-sandbox.html",
    sandbox.replace(inline[0], `<script src="${sandboxJs}"></script>`),
);

// hydrogen.es.js imports olm.js for its side effect; Hydrogen loads olm itself (a script
// tag for the copy above, only when a session needs it), so the import bundles nothing.
const olmImportIsLoadedAtRunTime = {
    name: "olm-loaded-at-run-time",
    setup(build) {
        build.onResolve({ filter: /^@matrix-org\/olm\/olm\.js$/ }, () => ({
            path: "olm",
            namespace: "loaded-at-run-time",
        }));
        build.onLoad({ filter: /.*/, namespace: "loaded-at-run-time" }, () => ({ contents: "" }));
    },
};

// Fixes to Hydrogen's own code, applied to its bundle as exact text replacements (the build
// fails when a pin change makes one miss). Each says what was wrong.
const HYDROGEN_FIXES = [
    {
        // CreateRoomViewModel.create() reads `.id` of Session.createRoom()'s result, which
        // became a promise (it runs in a log item): the app opened "#/.../room/" with no id and
        // threw in IndexedDB. Open the room once it exists: the local id while it is still
        // being created (its view shows progress or the error), else the room's own id.
        why: "create room opens the new room",
        find: 'avatar\n    });\n    this.navigation.push("room", roomBeingCreated.id);',
        replace:
            'avatar\n    });\n    roomBeingCreated.then((created) => this.navigation.push("room", ' +
            "this._session.roomsBeingCreated.get(created.id) ? created.id : created.roomId));",
    },
    {
        // A picture being sent with no thumbnail of its own (a small one) had the URL
        // `undefined`: the browser asked the relay for /undefined. Preview the picture itself.
        why: "a small picture being sent previews itself",
        find: 'return attachment && attachment.localPreview.url;',
        replace:
            "const preview = attachment || this._entry.pendingEvent.getAttachment(\"url\");\n" +
            '      return preview ? preview.localPreview.url : "";',
    },
    {
        // With no service worker (a browser that gives none to a plain-HTTP LAN origin),
        // loading a session threw on `updateService` (the worker's handler) being null.
        why: "a session loads without a service worker",
        find: "this._platform.updateService.updateAuthData(",
        replace: "this._platform.updateService?.updateAuthData(",
        times: 2,
    },
];

const hydrogenFixes = {
    name: "hydrogen-fixes",
    setup(build) {
        build.onLoad({ filter: /hydrogen-view-sdk[\\/]lib-build[\\/]hydrogen\.es\.js$/ }, (args) => {
            let code = readFileSync(args.path, "utf8");
            for (const fix of HYDROGEN_FIXES) {
                if (code.split(fix.find).length !== (fix.times ?? 1) + 1) {
                    throw new Error(`Hydrogen fix no longer applies: ${fix.why}`);
                }
                code = code.replaceAll(fix.find, fix.replace);
            }
            return { contents: code, loader: "js" };
        });
    },
};

const result = await esbuild.build({
    entryPoints: [join(here, "src", "main.js")],
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2020"],
    outdir: assets,
    entryNames: "[name]-[hash]",
    chunkNames: "[name]-[hash]",
    splitting: true,
    assetNames: "[name]-[hash]",
    publicPath: "/assets",
    loader: { ".woff": "file", ".woff2": "file", ".svg": "file", ".png": "file" },
    define: {
        RELAY_ASSETS: JSON.stringify({
            downloadSandbox: sandboxHtml,
            olm: { wasm: olmWasm, wasmBundle: olmJs, legacyBundle: olmJs },
            serviceWorker: "/sw.js",
        }),
    },
    plugins: [olmImportIsLoadedAtRunTime, hydrogenFixes],
    metafile: true,
    legalComments: "linked",
    logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const mainJs = outputs.find((f) => /^main-.*\.js$/.test(f));
const mainCss = outputs.find((f) => /^main-.*\.css$/.test(f));
if (!mainJs || !mainCss) throw new Error(`esbuild made no main .js/.css: ${outputs}`);

const index = readFileSync(join(here, "src", "index.html"), "utf8")
    .replaceAll("{{MAIN_JS}}", `/assets/${mainJs}`)
    .replaceAll("{{MAIN_CSS}}", `/assets/${mainCss}`);
writeFileSync(join(out, "index.html"), index);
writeFileSync(join(out, "sw.js"), readFileSync(join(modules, "hydrogen-view-sdk", "lib-build", "sw.js")));

// The theme names each Inter face twice, WOFF2 then WOFF; every browser that runs this app
// takes the WOFF2, so the WOFF copies (2.6 MB) are not shipped.
for (const name of readdirSync(assets)) {
    if (name.endsWith(".woff")) rmSync(join(assets, name));
}

const COMPRESS = new Set([".html", ".js", ".css", ".svg", ".wasm", ".json", ".txt"]);
function compressAll(dir) {
    for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) compressAll(path);
        else if (COMPRESS.has(extname(name)) || name.endsWith(".LEGAL.txt")) {
            const bytes = readFileSync(path);
            const gz = gzipSync(bytes, { level: 9 });
            if (gz.length < bytes.length) writeFileSync(`${path}.gz`, gz);
        }
    }
}
compressAll(out);
console.log(`web client built into ${out}`);
