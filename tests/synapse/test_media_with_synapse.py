"""Media across the relay and a real Synapse: each side downloads (and thumbnails) what
was uploaded on the other, through its own client API, over federation."""

from __future__ import annotations

import io

from PIL import Image

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import Pair

UPLOAD = "/_matrix/media/v3/upload"
V1 = "/_matrix/client/v1/media"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (250, 180, 20)).save(out, "PNG")
    return out.getvalue()


def upload(user: MatrixUser, data: bytes, content_type: str, filename: str) -> str:
    r = user.http.post(
        UPLOAD, content=data, params={"filename": filename}, headers={"Content-Type": content_type}
    )
    assert r.status_code == 200, r.text
    return r.json()["content_uri"].removeprefix("mxc://")


def test_relay_upload_downloads_from_synapse_and_back(pair: Pair) -> None:
    field = pair.relay_user("field")
    hq = pair.synapse_user("hq")
    report = b"casualty report: none\n" * 1000
    mxc = upload(field, report, "text/plain", "report.txt")
    assert mxc.startswith(pair.relay.server_name + "/")

    # Synapse fetches it from the relay over federation.
    r = hq.http.get(f"{V1}/download/{mxc}")
    assert r.status_code == 200, r.text
    assert r.content == report
    assert r.headers["content-type"].startswith("text/plain")
    assert "report.txt" in r.headers["content-disposition"]

    # And the other way: uploaded on Synapse, fetched by the relay.
    photo = png(1024, 768)
    theirs = upload(hq, photo, "image/png", "photo.png")
    assert theirs.startswith(pair.synapse.server_name + "/")
    r = field.http.get(f"{V1}/download/{theirs}")
    assert r.status_code == 200, r.text
    assert r.content == photo
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == "inline; filename=photo.png"


def test_thumbnails_across_relay_and_synapse(pair: Pair) -> None:
    field = pair.relay_user("field")
    hq = pair.synapse_user("hq")
    ours = upload(field, png(1600, 800), "image/png", "ours.png")
    theirs = upload(hq, png(1600, 800), "image/png", "theirs.png")

    # Synapse thumbnails the relay's image (fetched from us over federation).
    r = hq.http.get(f"{V1}/thumbnail/{ours}", params={"width": 320, "height": 240})
    assert r.status_code == 200, r.text
    width, height = Image.open(io.BytesIO(r.content)).size
    assert (width, height) == (320, 160)

    # The relay gets a thumbnail of Synapse's image.
    r = field.http.get(
        f"{V1}/thumbnail/{theirs}", params={"width": 96, "height": 96, "method": "crop"}
    )
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)
    r = field.http.get(
        f"{V1}/thumbnail/{theirs}", params={"width": 320, "height": 240, "method": "scale"}
    )
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (320, 160)


def test_unknown_media_on_the_other_side_is_404(pair: Pair) -> None:
    field = pair.relay_user("field")
    hq = pair.synapse_user("hq")
    r = field.http.get(f"{V1}/download/{pair.synapse.server_name}/nosuchmedia")
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = hq.http.get(f"{V1}/download/{pair.relay.server_name}/nosuchmedia")
    assert r.status_code == 404, r.text
