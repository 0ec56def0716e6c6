// Typing notices and read receipts, which Hydrogen neither sends (beyond a receipt when a
// room is opened) nor shows. This module:
// - watches Hydrogen's own /sync answers (it wraps platform.request; no second sync loop);
// - sends "typing" while the composer of the open room holds text, and "stopped" when it is
//   emptied or the message is sent;
// - sends a read receipt for the newest event of the open room while the page is visible;
// - shows one line above the composer: who is typing, and who has seen the newest message.

const SYNC_PATH = /\/_matrix\/client\/(r0|v3)\/sync\?/;
const LEAVE_PATH = /\/_matrix\/client\/(r0|v3)\/rooms\/([^/]+)\/leave\b/;
const JOIN_PATH = /\/_matrix\/client\/(r0|v3)\/(join\/[^/?]+|rooms\/[^/]+\/join)\b/;
const TYPING_TIMEOUT_MS = 30000;
// Re-send "typing" this often while the person keeps typing (before the server times it out).
const TYPING_REFRESH_MS = 20000;

export class TypingAndReceipts {
    constructor(homeserver) {
        this._homeserver = homeserver;
        this._authorization = null;
        this._userId = null;
        this._typing = new Map(); // roomId -> user ids typing (others')
        this._readers = new Map(); // roomId -> Map(userId -> eventId of their m.read)
        this._newest = new Map(); // roomId -> {eventId, sender} of the newest timeline event
        this._receiptSent = new Map(); // roomId -> event id we last sent m.read for
        this._left = new Set(); // rooms being left or left: no receipts, no typing
        this._typingSentAt = 0;
        this._typingRoom = null;
        this._line = null;
    }

    // Call before Hydrogen makes its first request.
    attach(platform) {
        const request = platform.request;
        platform.request = (url, options) => {
            const leaving = LEAVE_PATH.exec(url);
            // Leaving: nothing more goes to that room from here (a receipt would be refused).
            if (leaving) this._forget(decodeURIComponent(leaving[2]));
            const result = request(url, options);
            if (JOIN_PATH.test(url)) {
                // Joined (again): the room is no longer one being left.
                result.response().then(
                    ({ status, body }) => status === 200 && this._left.delete(body?.room_id),
                    () => {},
                );
            }
            if (SYNC_PATH.test(url)) {
                const authorization = options?.headers?.get?.("Authorization");
                result.response().then(
                    ({ status, body }) => {
                        if (status === 200 && body) this._onSync(body, authorization);
                    },
                    () => {},
                );
            }
            return result;
        };
        document.addEventListener("input", (event) => this._onInput(event), true);
        document.addEventListener("keydown", (event) => this._onKeydown(event), true);
        window.addEventListener("hashchange", () => this._onRoomChange());
        document.addEventListener("visibilitychange", () => this._sendReceipt());
        // Hydrogen re-renders the room view (opening a room, a reload): put the line back.
        new MutationObserver(() => this._render()).observe(document.body, {
            childList: true,
            subtree: true,
        });
    }

    async _onSync(body, authorization) {
        if (authorization && authorization !== this._authorization) {
            this._authorization = authorization;
            this._userId = await this._whoami();
        }
        for (const [roomId, room] of Object.entries(body.rooms?.join ?? {})) {
            const events = room.timeline?.events ?? [];
            const last = events[events.length - 1];
            if (this._left.has(roomId)) continue;
            if (last) this._newest.set(roomId, { eventId: last.event_id, sender: last.sender });
            for (const event of room.ephemeral?.events ?? []) {
                if (event.type === "m.typing") {
                    const ids = event.content?.user_ids;
                    this._typing.set(roomId, Array.isArray(ids) ? ids : []);
                } else if (event.type === "m.receipt") {
                    this._applyReceipts(roomId, event.content ?? {});
                }
            }
        }
        // A room left (or banned from) gets no more receipts or typing from this page.
        for (const roomId of Object.keys(body.rooms?.leave ?? {})) this._forget(roomId);
        this._sendReceipt();
        this._render();
    }

    _forget(roomId) {
        this._left.add(roomId);
        this._newest.delete(roomId);
        this._typing.delete(roomId);
        if (this._typingRoom === roomId) this._typingRoom = null;
    }

    _applyReceipts(roomId, content) {
        let readers = this._readers.get(roomId);
        if (!readers) this._readers.set(roomId, (readers = new Map()));
        for (const [eventId, byType] of Object.entries(content)) {
            for (const userId of Object.keys(byType?.["m.read"] ?? {})) {
                readers.set(userId, eventId);
            }
        }
    }

    async _whoami() {
        const response = await this._call("GET", "/_matrix/client/v3/account/whoami");
        return response?.user_id ?? null;
    }

    async _call(method, path, body) {
        if (!this._authorization) return null;
        try {
            const response = await fetch(this._homeserver + path, {
                method,
                headers: { Authorization: this._authorization, "Content-Type": "application/json" },
                body: body === undefined ? undefined : JSON.stringify(body),
            });
            return response.ok ? await response.json() : null;
        } catch {
            return null; // offline for a moment: the next sync or keystroke tries again
        }
    }

    // The room open in the app: "#/session/<id>/room/<roomId>" (Hydrogen's URL).
    _openRoomId() {
        const match = /\/room\/([^/]+)/.exec(window.location.hash);
        return match ? decodeURIComponent(match[1]) : null;
    }

    _isComposer(target) {
        return target instanceof HTMLTextAreaElement && !!target.closest(".MessageComposer");
    }

    _onInput(event) {
        if (!this._isComposer(event.target)) return;
        this._setTyping(event.target.value.trim() !== "");
    }

    _onKeydown(event) {
        if (this._isComposer(event.target) && event.key === "Enter" && !event.shiftKey) {
            this._setTyping(false);
        }
    }

    _onRoomChange() {
        if (this._typingRoom && this._typingRoom !== this._openRoomId()) this._setTyping(false);
        this._sendReceipt();
        this._render();
    }

    _setTyping(typing) {
        const roomId = typing ? this._openRoomId() : this._typingRoom;
        if (!roomId || !this._userId) return;
        const now = Date.now();
        if (typing && this._typingRoom === roomId && now - this._typingSentAt < TYPING_REFRESH_MS) {
            return;
        }
        this._typingRoom = typing ? roomId : null;
        this._typingSentAt = typing ? now : 0;
        const path =
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}` +
            `/typing/${encodeURIComponent(this._userId)}`;
        this._call("PUT", path, typing ? { typing: true, timeout: TYPING_TIMEOUT_MS } : { typing: false });
    }

    _sendReceipt() {
        const roomId = this._openRoomId();
        const eventId = roomId && this._newest.get(roomId)?.eventId;
        if (!eventId || document.visibilityState !== "visible") return;
        if (this._receiptSent.get(roomId) === eventId) return;
        this._receiptSent.set(roomId, eventId);
        const path =
            `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}` +
            `/receipt/m.read/${encodeURIComponent(eventId)}`;
        this._call("POST", path, {});
    }

    _render() {
        const roomId = this._openRoomId();
        const composer = document.querySelector(".RoomView .MessageComposer");
        if (!roomId || !composer) return;
        if (!this._line || !this._line.isConnected) {
            this._line = document.createElement("div");
            this._line.className = "RelayRoomActivity";
            this._line.setAttribute("aria-live", "polite");
        }
        if (this._line.nextElementSibling !== composer) composer.before(this._line);
        const others = (ids) => ids.filter((id) => id !== this._userId);
        const typing = others(this._typing.get(roomId) ?? []);
        // Seen: by whoever's m.read is on the newest event, its own sender aside.
        const newest = this._newest.get(roomId);
        const readers = [...(this._readers.get(roomId) ?? new Map())];
        const seenBy = others(
            readers
                .filter(([id, eventId]) => eventId === newest?.eventId && id !== newest?.sender)
                .map(([id]) => id),
        );
        const parts = [];
        if (typing.length) parts.push(`${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…`);
        if (seenBy.length) parts.push(`Seen by ${seenBy.join(", ")}`);
        const text = parts.join(" · ");
        // Only real changes touch the DOM (this runs from a MutationObserver too).
        if (this._line.textContent !== text) this._line.textContent = text;
        if (this._line.hidden !== (text === "")) this._line.hidden = text === "";
    }
}
