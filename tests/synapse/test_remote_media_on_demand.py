"""Remote media crosses the link only when a local user asks for it, thumbnail first
(issue 17: on a 9.6 kbit/s link a photo is minutes of airtime).

A real Synapse is the remote. Its access log says what it served to the relay (each
request's path and bytes), so the test counts requests and bytes, never times:
- an `m.image` event arriving at the relay fetches nothing (no prefetch);
- a thumbnail request fetches the thumbnail from the remote, not the original;
- the same thumbnail again is served from the relay's cache;
- only a download fetches the original.
"""

from __future__ import annotations

import io
import random
import re

from PIL import Image

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import Pair

UPLOAD = "/_matrix/media/v3/upload"
V1 = "/_matrix/client/v1/media"
#: one line of Synapse's access log: bytes, status, method and path.
ACCESS = re.compile(r'Processed request: .* (\d+)B (\d{3}) "GET (\S+) HTTP')


def _photo() -> bytes:
    """A 640x480 photo-like PNG (noise does not compress): about 900 KB."""
    rng = random.Random(17)
    image = Image.frombytes("RGB", (640, 480), rng.randbytes(640 * 480 * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _served_media(pair: Pair) -> list[tuple[str, int]]:
    """(path, bytes) of every media request Synapse answered over federation."""
    served = []
    for line in pair.synapse.log().splitlines():
        if "synapse.access.https" not in line:
            continue
        match = ACCESS.search(line)
        if match and "/media/" in match.group(3):
            served.append((match.group(3), int(match.group(1))))
    return served


def _timeline_ids(body: dict, room_id: str) -> list[str]:
    events = body.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {})
    return [e.get("event_id") for e in events.get("events", [])]


def test_remote_media_is_fetched_only_when_asked_and_a_thumbnail_fetches_only_the_thumbnail(
    pair: Pair,
) -> None:
    hq: MatrixUser = pair.synapse_user("hq")
    field: MatrixUser = pair.relay_user("field")
    room_id = hq.create_room(preset="private_chat")
    hq.invite(room_id, field.user_id)
    field.wait_for_invite(room_id)
    field.join(room_id, via=[pair.synapse.server_name])

    photo = _photo()
    r = hq.http.post(
        UPLOAD,
        content=photo,
        params={"filename": "photo.png"},
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 200, r.text
    mxc = r.json()["content_uri"]
    image_event = hq.call(
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/img1",
        json={
            "msgtype": "m.image",
            "body": "photo.png",
            "url": mxc,
            "info": {"mimetype": "image/png", "size": len(photo), "w": 640, "h": 480},
        },
    )["event_id"]
    after = hq.send(room_id, "and a line after it")
    seen: set[str] = set()

    def arrived(body: dict) -> bool:
        seen.update(_timeline_ids(body, room_id))
        return {image_event, after} <= seen

    field.wait_for(arrived, what="the m.image event and the message after it")
    assert _served_media(pair) == []  # the event alone fetched nothing

    media = mxc.removeprefix("mxc://")
    query = {"width": 96, "height": 96, "method": "crop"}
    r = field.http.get(f"{V1}/thumbnail/{media}", params=query)
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)
    served = _served_media(pair)
    assert [path.split("?")[0].rsplit("/", 2)[-2] for path, _ in served] == ["thumbnail"]
    assert sum(size for _, size in served) < len(photo) // 10  # the thumbnail, not the photo

    r = field.http.get(f"{V1}/thumbnail/{media}", params=query)
    assert r.status_code == 200, r.text
    assert _served_media(pair) == served  # from the relay's cache

    r = field.http.get(f"{V1}/download/{media}")
    assert r.status_code == 200, r.text
    assert r.content == photo
    served = _served_media(pair)
    assert [path.split("?")[0].rsplit("/", 2)[-2] for path, _ in served] == [
        "thumbnail",
        "download",
    ]
    assert served[-1][1] >= len(photo)
