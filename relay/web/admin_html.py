"""The operator page's HTML: plain server-rendered markup, one stylesheet, no script.

Every value that reaches the page goes through `html.escape` (`_e`), whoever wrote it:
server names, user ids and peer names come from the network. Forms post to the page's
own actions with the session's CSRF token (relay/web/admin_page.py).
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

PREFIX = "/_relay/admin"

STYLESHEET = """
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
body { margin: 0 auto; max-width: 60rem; padding: 0.75rem; }
h1 { font-size: 1.3rem; margin: 0.2rem 0 0.8rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 0.5rem; border-bottom: 1px solid #cfd4da; }
section { background: #fff; border-radius: 0.5rem; padding: 0.5rem 0.8rem 0.8rem;
  margin: 0.7rem 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 0.8rem; margin: 0; }
dt { color: #57606a; } dd { margin: 0; overflow-wrap: anywhere; }
.card { border: 1px solid #d8dee4; border-radius: 0.4rem; padding: 0.5rem; margin: 0.4rem 0; }
.card p { margin: 0.2rem 0; overflow-wrap: anywhere; }
.mono { font-family: ui-monospace, monospace; font-size: 0.85rem; overflow-wrap: anywhere; }
.status { font-weight: 600; } .trusted, .ok { color: #1a7f37; } .pending { color: #9a6700; }
.rejected, .bad { color: #cf222e; }
form { margin: 0.3rem 0; } form.inline { display: inline-block; margin-right: 0.4rem; }
label { display: block; margin: 0.3rem 0 0.1rem; }
input[type=text], input[type=password], input[type=number] {
  width: 100%; box-sizing: border-box; font-size: 1rem; padding: 0.45rem;
  border: 1px solid #afb8c1; border-radius: 0.3rem; }
button { font-size: 1rem; padding: 0.45rem 0.9rem; margin-top: 0.4rem; border-radius: 0.3rem;
  border: 1px solid #1f6feb; background: #1f6feb; color: #fff; }
button.secondary { background: #fff; color: #1f6feb; }
button.danger { background: #fff; color: #cf222e; border-color: #cf222e; }
.message { padding: 0.6rem; border-radius: 0.4rem; margin: 0.5rem 0; overflow-wrap: anywhere; }
.message.ok { background: #dafbe1; } .message.bad { background: #ffebe9; }
.check { display: flex; gap: 0.4rem; align-items: center; }
.check input { width: auto; }
nav a { margin-right: 0.8rem; }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(ts_ms: int | None) -> str:
    if not ts_ms:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts_ms / 1000))


def _bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def document(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        f'<link rel="stylesheet" href="{PREFIX}/admin.css">'
        # No icon: else the browser asks for /favicon.ico, which nothing serves.
        '<link rel="icon" href="data:,">'
        f"</head><body>{body}</body></html>"
    )


def message_html(message: str | None, ok: bool) -> str:
    if not message:
        return ""
    kind = "ok" if ok else "bad"
    return f'<p class="message {kind}" role="status" id="message">{_e(message)}</p>'


def login_page(server_name: str, message: str | None = None) -> str:
    body = (
        f"<h1>{_e(server_name)}: operator</h1>"
        f"{message_html(message, ok=False)}"
        f'<section><form method="post" action="{PREFIX}/login">'
        '<label for="username">Admin user</label>'
        '<input type="text" id="username" name="username" autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password"'
        ' autocomplete="current-password" required>'
        '<button type="submit" id="login">Log in</button>'
        "</form><p>For server admins (<code>relay user add --admin</code>).</p></section>"
    )
    return document(f"{server_name}: operator login", body)


def _action(
    path: str, csrf: str, fields: str, label: str, css: str = "", form_class: str = ""
) -> str:
    classes = f' class="{form_class}"' if form_class else ""
    button_class = f' class="{css}"' if css else ""
    return (
        f'<form method="post" action="{PREFIX}/{path}"{classes}>'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">{fields}'
        f'<button type="submit"{button_class}>{_e(label)}</button></form>'
    )


def _hidden(name: str, value: Any) -> str:
    return f'<input type="hidden" name="{_e(name)}" value="{_e(value)}">'


def status_section(status: dict[str, Any], uptime_s: float) -> str:
    counts, media = status["counts"], status["media"]
    rows = [
        ("Server name", status["server_name"]),
        ("Signing key", f"{status['key_id']} {status['verify_key']}"),
        ("Key fingerprint", status.get("fingerprint", "")),
        ("Client API", status["listeners"]["client"]),
        ("Federation", status["listeners"]["federation"]),
        ("Uptime", _duration(uptime_s)),
        ("Users", counts["users"]),
        ("Rooms", counts["rooms"]),
        ("Events", counts["events"]),
        (
            "Media",
            f"{media['local_media']} uploads ({_bytes(media['local_bytes'])}), "
            f"{media['remote_media']} cached ({_bytes(media['remote_bytes'])})",
        ),
        ("Disk free", _bytes(status["disk_free_bytes"])),
        ("Upstream", status["upstream"] or "(none)"),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    destinations = "".join(
        _destination_card(name, dest) for name, dest in status["federation"].items()
    )
    upstream = status["upstream"]
    if upstream and upstream not in status["federation"]:
        destinations = (
            f'<div class="card"><p class="mono">{_e(upstream)}</p>'
            "<p>not contacted yet; nothing queued</p></div>" + destinations
        )
    return (
        f'<section id="status"><h2>Status</h2><dl>{items}</dl>'
        f"<h2>Federation queues</h2>{destinations or '<p>No destinations yet.</p>'}</section>"
    )


def _destination_card(name: str, dest: dict[str, Any]) -> str:
    if dest.get("since_ts") is None and dest.get("last_attempt_ts") is None:
        state, css = "not contacted yet", "pending"
    elif dest.get("reachable"):
        state, css = f"reachable since {_when(dest.get('since_ts'))}", "ok"
    else:
        state, css = f"UNREACHABLE since {_when(dest.get('since_ts'))}", "bad"
    return (
        f'<div class="card"><p class="mono">{_e(name)}</p>'
        f'<p class="status {css}">{_e(state)}</p>'
        f"<p>{_e(dest.get('queue_depth', 0))} queued; last success "
        f"{_e(_when(dest.get('last_success_ts')))}</p></div>"
    )


def peers_section(peers: list[dict[str, Any]], csrf: str) -> str:
    cards = []
    for peer in peers:
        buttons = ""
        if peer["key_id"] is not None and peer["status"] != "trusted":
            buttons += _action(
                "peers/approve", csrf, _hidden("name", peer["name"]), "Approve", "", "inline"
            )
        if peer["pinned_by"] == "operator":
            buttons += _action(
                "peers/revoke", csrf, _hidden("name", peer["name"]), "Revoke", "danger", "inline"
            )
        reach = "reachable" if peer["reachable"] else "unreachable"
        cards.append(
            f'<div class="card peer" data-name="{_e(peer["name"])}">'
            f'<p class="mono">{_e(peer["name"])} at {_e(peer["address"])}</p>'
            f'<p><span class="status {_e(peer["status"])}">{_e(peer["status"])}</span>'
            f" · {_e(reach)} · last seen {_e(_when(peer['last_seen']))}</p>"
            f'<p class="mono">fingerprint {_e(peer["fingerprint"] or "unknown")}</p>'
            f"<p>{_e(peer['reason'] or '')}</p>{buttons}</div>"
        )
    body = "".join(cards) or "<p>No LAN peers seen.</p>"
    return (
        '<section id="peers"><h2>LAN peers</h2>'
        "<p>Approve a peer only after comparing its fingerprint with the one its own"
        " operator page (or <code>relay status</code>) shows.</p>"
        f"{body}</section>"
    )


def users_section(users: list[dict[str, Any]], csrf: str) -> str:
    cards = []
    for user in users:
        flags = " · ".join(
            f for f, on in (("admin", user["is_admin"]), ("deactivated", user["deactivated"])) if on
        )
        actions = ""
        if not user["deactivated"]:
            actions = _action(
                "users/password",
                csrf,
                _hidden("user_id", user["user_id"])
                + '<label>New password<input type="password" name="password"'
                ' autocomplete="new-password" required></label>',
                "Reset password",
                "secondary",
            ) + _action(
                "users/deactivate",
                csrf,
                _hidden("user_id", user["user_id"]),
                "Deactivate",
                "danger",
            )
        cards.append(
            f'<div class="card user"><p class="mono">{_e(user["user_id"])}</p>'
            f"<p>{_e(flags or 'user')} · created {_e(_when(user['created_ts']))}"
            f" · last seen {_e(_when(user['last_seen_ts']))}</p>{actions}</div>"
        )
    add = _action(
        "users/add",
        csrf,
        '<label for="new-user">User name</label>'
        '<input type="text" id="new-user" name="localpart" required autocomplete="off">'
        '<label for="new-user-password">Password</label>'
        '<input type="password" id="new-user-password" name="password"'
        ' autocomplete="new-password" required>'
        '<label class="check"><input type="checkbox" name="admin" value="1"> Server admin</label>',
        "Add user",
    )
    return f'<section id="users"><h2>Users</h2>{add}{"".join(cards)}</section>'


def tokens_section(tokens: list[dict[str, Any]], csrf: str) -> str:
    cards = []
    for token in tokens:
        allowed = "unlimited" if token["uses_allowed"] is None else token["uses_allowed"]
        expiry = "never" if token["expiry_time"] is None else _when(token["expiry_time"])
        state = "valid" if token["valid"] else "spent or expired"
        cards.append(
            f'<div class="card token"><p class="mono">{_e(token["hint"])}</p>'
            f"<p>used {_e(token['completed'])}/{_e(allowed)} ({_e(token['pending'])} pending)"
            f" · expires {_e(expiry)} · {_e(state)}</p>"
            + _action(
                "tokens/delete",
                csrf,
                _hidden("token_hash", token["token_hash"]),
                "Delete",
                "danger",
            )
            + "</div>"
        )
    add = _action(
        "tokens/add",
        csrf,
        '<label for="token-text">Token (empty: a random one)</label>'
        '<input type="text" id="token-text" name="token" autocomplete="off"'
        ' pattern="[A-Za-z0-9._~\\-]{1,64}">'
        '<label for="token-uses">Uses (empty: unlimited)</label>'
        '<input type="number" id="token-uses" name="uses" min="0">'
        '<label for="token-hours">Expires in hours (empty: never)</label>'
        '<input type="number" id="token-hours" name="expires_in_hours" min="0" step="any">',
        "Create token",
    )
    return (
        '<section id="tokens"><h2>Registration tokens</h2>'
        "<p>Tokens are stored hashed: the list shows the start of each; a new token is"
        " shown in full once.</p>"
        f"{add}{''.join(cards)}</section>"
    )


def backup_section(csrf: str) -> str:
    return (
        '<section id="backup"><h2>Backup</h2>'
        "<p>One archive of the database, keys, certificate, config and media (as"
        " <code>relay backup</code>). It holds the private keys: keep it safe.</p>"
        + _action("backup", csrf, "", "Download backup")
        + "</section>"
    )


def reports_section(reports: list[dict[str, Any]], csrf: str) -> str:
    cards = []
    for report in reports:
        if report["kind"] == "event":
            what = (
                f'a message by <span class="mono">{_e(report.get("sender") or "unknown")}</span>'
                f" in {_e(report.get('room_name') or report['room_id'])}"
            )
        elif report["kind"] == "room":
            what = f"the room {_e(report.get('room_name') or report['room_id'])}"
        else:
            what = f'the user <span class="mono">{_e(report["target_user_id"])}</span>'
        body = report.get("body")
        quoted = f"<blockquote>{_e(body[:500])}</blockquote>" if body else ""
        cards.append(
            f'<div class="card report" data-id="{report["id"]}">'
            f'<p><span class="mono">{_e(report["reporter"])}</span> reported {what}'
            f" · {_e(_when(report['received_ts']))}</p>{quoted}"
            f"<p>Reason: {_e(report['reason'] or '(none given)')}</p>"
            + _action("reports/dismiss", csrf, _hidden("id", report["id"]), "Dismiss", "", "inline")
            + "</div>"
        )
    body = "".join(cards) or "<p>No reports.</p>"
    return f'<section id="reports"><h2>Reports</h2>{body}</section>'


def main_page(
    *,
    user_id: str,
    csrf: str,
    status: dict[str, Any],
    uptime_s: float,
    peers: list[dict[str, Any]],
    users: list[dict[str, Any]],
    tokens: list[dict[str, Any]],
    reports: list[dict[str, Any]],
    message: str | None,
    ok: bool,
) -> str:
    header = (
        f"<h1>{_e(status['server_name'])}: operator</h1>"
        '<nav><a href="#status">Status</a><a href="#peers">Peers</a>'
        '<a href="#users">Users</a><a href="#tokens">Tokens</a><a href="#reports">Reports</a>'
        '<a href="#backup">Backup</a></nav>'
        f'<p>Logged in as <span class="mono">{_e(user_id)}</span></p>'
        + _action("logout", csrf, "", "Log out", "secondary")
    )
    body = (
        header
        + message_html(message, ok)
        + status_section(status, uptime_s)
        + peers_section(peers, csrf)
        + users_section(users, csrf)
        + tokens_section(tokens, csrf)
        + reports_section(reports, csrf)
        + backup_section(csrf)
    )
    return document(f"{status['server_name']}: operator", body)
