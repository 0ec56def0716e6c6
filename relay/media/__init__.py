"""The content repository: uploads, downloads, thumbnails and the remote media cache.

- `blobs.py`: files on disk, content-addressed (`ab/cd/<sha256>`), written durably.
- `thumbnails.py`: which thumbnail sizes we make, and making them (Pillow).
- `multipart.py`: the federation media response (`multipart/mixed`), both ways.
- `headers.py`: the headers media is served with (Content-Disposition, CSP, ...).
- `repository.py`: the service the client and federation routes call.
- `cleanup.py`: shrinking the remote cache to its quota, removing orphans.

Spec: https://spec.matrix.org/v1.16/client-server-api/#content-repository
"""
