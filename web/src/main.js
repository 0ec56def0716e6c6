// The relay's chat client: Hydrogen's whole app (RootViewModel/RootView from
// hydrogen-view-sdk), pointed at the relay that served this page, so nobody types a
// homeserver URL; plus what Hydrogen lacks: a "register with an invitation token" form,
// shown when the relay's registration asks for a token (Hydrogen has the registration
// stages but no view); typing notices and read receipts (typing_and_receipts.js); and, on
// an origin that is not a secure context, stand-ins for WebCrypto and the service worker
// (insecure_context.js).
import {
    Client,
    FeatureSet,
    LoadStatus,
    Platform,
    RootViewModel,
    createNavigation,
    createRouter,
} from "hydrogen-view-sdk";
import "hydrogen-view-sdk/theme-element-light.css";
import "./relay.css";
import { TypingAndReceipts } from "./typing_and_receipts.js";

// The relay serves this page on its client listener: the homeserver is this origin.
const HOMESERVER = window.location.origin;
const REGISTER_HASH = "#/register";
const TOKEN_STAGE = "m.login.registration_token";

function makePlatform() {
    // RELAY_ASSETS: paths of olm, the download sandbox and the service worker (build.mjs).
    return new Platform({
        container: document.body,
        assetPaths: RELAY_ASSETS,
        config: { defaultHomeServer: HOMESERVER },
        options: { development: false },
    });
}

// On an origin the browser does not count as secure (plain HTTP to a LAN address), the
// page lacks WebCrypto and service workers: insecure_context.js stands in for both.
async function prepareOrigin() {
    if (window.isSecureContext) return null;
    const insecure = await import("./insecure_context.js");
    insecure.provideSubtleCrypto();
    return insecure;
}

async function startApp() {
    const insecure = await prepareOrigin();
    const platform = makePlatform();
    insecure?.authenticateMedia(platform);
    new TypingAndReceipts(HOMESERVER).attach(platform);
    const navigation = createNavigation();
    platform.setNavigation(navigation);
    await platform.init();
    const urlRouter = createRouter({ navigation, history: platform.history });
    urlRouter.attach();
    const features = await FeatureSet.load(platform.settingsStorage);
    const vm = new RootViewModel({ platform, navigation, urlRouter, features });
    await vm.load();
    platform.createAndMountRootView(vm);
    offerRegistration();
}

// Whether the relay registers new accounts with a token: its registration flows say so
// (a 401 listing the token stage; 403 when registration is closed).
async function registrationTakesToken() {
    try {
        const response = await fetch(`${HOMESERVER}/_matrix/client/v3/register`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: "{}",
        });
        if (response.status !== 401) return false;
        const body = await response.json();
        return (body.flows || []).some((flow) => (flow.stages || []).includes(TOKEN_STAGE));
    } catch {
        return false;
    }
}

// A link under the login form, only on the login screen, only if a token opens an account.
async function offerRegistration() {
    if (!(await registrationTakesToken())) return;
    const link = document.createElement("a");
    link.className = "RelayRegisterLink";
    link.href = REGISTER_HASH;
    link.textContent = "New here? Create an account with an invitation token";
    link.addEventListener("click", (event) => {
        event.preventDefault();
        window.location.hash = REGISTER_HASH;
        window.location.reload();
    });
    const place = () => {
        const login = document.querySelector(".PasswordLoginView");
        if (login && !login.contains(link)) login.append(link);
        else if (!login) link.remove();
    };
    new MutationObserver(place).observe(document.body, { childList: true, subtree: true });
    place();
}

// The relay's answer to "would this token open an account?" (asked before anything is sent).
async function tokenIsValid(token) {
    const url = new URL(`${HOMESERVER}/_matrix/client/v1/register/${TOKEN_STAGE}/validity`);
    url.searchParams.set("token", token);
    const response = await fetch(url);
    if (!response.ok) return false;
    return (await response.json()).valid === true;
}

function field(form, id, label, type) {
    const row = document.createElement("div");
    row.className = "form-row text";
    const labelEl = document.createElement("label");
    labelEl.htmlFor = id;
    labelEl.textContent = label;
    const input = document.createElement("input");
    input.id = id;
    input.type = type;
    input.required = true;
    row.append(labelEl, input);
    form.append(row);
    return input;
}

// Registers through Hydrogen's own registration stages, then starts the session the
// relay handed back and opens the app on it (the session is stored like a login's).
async function startRegistration() {
    await prepareOrigin();
    const platform = makePlatform();
    await platform.init();
    const screen = document.createElement("div");
    screen.className = "PreSessionScreen RelayRegisterView";
    const title = document.createElement("h1");
    title.textContent = "Create an account";
    const form = document.createElement("form");
    form.className = "form";
    const username = field(form, "username", "Username", "text");
    const password = field(form, "password", "Password", "password");
    const token = field(form, "token", "Invitation token", "text");
    const error = document.createElement("p");
    error.className = "error";
    const buttons = document.createElement("div");
    buttons.className = "button-row";
    const submit = document.createElement("button");
    submit.className = "button-action primary";
    submit.type = "submit";
    submit.textContent = "Create account";
    const back = document.createElement("a");
    back.href = "#/login";
    back.textContent = "I have an account: log in";
    back.addEventListener("click", (event) => {
        event.preventDefault();
        window.location.hash = "#/login";
        window.location.reload();
    });
    buttons.append(submit);
    form.append(error, buttons, back);
    screen.append(title, form);
    document.body.append(screen);

    form.addEventListener("submit", async (event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        try {
            if (!(await tokenIsValid(token.value.trim()))) {
                error.textContent = "That invitation token is not valid (or it is used up).";
                submit.disabled = false;
                return;
            }
            const features = await FeatureSet.load(platform.settingsStorage);
            const client = new Client(platform, features);
            const registration = await client.startRegistration(
                HOMESERVER,
                username.value,
                password.value,
                "Web chat",
                (flows) => flows.find((flow) => flow.stages.includes(TOKEN_STAGE)) || flows[0],
            );
            let stage = await registration.start();
            while (stage) {
                if (stage.type === TOKEN_STAGE) stage.setToken(token.value.trim());
                stage = await registration.submitStage(stage);
            }
            await client.startWithAuthData(registration.authData);
            await client.loadStatus.waitFor(
                (s) => s === LoadStatus.Ready || s === LoadStatus.Error || s === LoadStatus.FirstSync,
            ).promise;
            if (client.loadError) throw client.loadError;
            window.location.hash = `#/session/${client.sessionId}`;
            window.location.reload();
        } catch (err) {
            const code = err.errcode ? `${err.errcode}: ` : "";
            error.textContent = `Could not create the account. ${code}${err.message || err}`;
            submit.disabled = false;
        }
    });
}

if (window.location.hash === REGISTER_HASH) {
    startRegistration();
} else {
    startApp();
}
