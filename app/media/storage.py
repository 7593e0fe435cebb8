"""Where upload bytes live, behind one small interface.

Files are named by keys the server makes from random upload ids, never by anything a
client sent. A file appears under its key only when it is complete: it is written in the
storage's scratch folder and moved into place with one rename, so a crash or a refused
upload never leaves a half-written file where it could be served.

`LocalStorage` keeps everything under `UPLOAD_FOLDER` (outside the static folder, checked
in config.py). Another backend (an S3-compatible bucket) implements the same methods:
`send` would answer with a redirect to a short-lived signed URL.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import Response, current_app, send_file

from app.errors import not_found

KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}(\.thumb)?$")


class Storage(Protocol):
    def scratch(self) -> Path:
        """A new private folder for one upload's temporary files; the caller removes it."""

    def put(self, key: str, source: Path) -> None:
        """Move the finished file `source` (inside a scratch folder) to `key`, atomically."""

    def delete(self, key: str) -> None:
        """Remove the file under `key`; a missing file is not an error."""

    def open(self, key: str) -> BinaryIO:
        """The file under `key`, opened for reading (FileNotFoundError when it is gone)."""

    def send(self, key: str, *, mimetype: str, as_attachment: bool, download_name: str) -> Response:
        """A response with the file, honouring conditional and Range requests."""

    def sweep_scratch(self, older_than: timedelta) -> int:
        """Remove scratch folders left by uploads that died mid-way; returns how many."""


class LocalStorage:
    """A folder on the local disk: `<root>/<first two hex digits>/<key>`, scratch in `<root>/tmp`."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.scratch_root = self.root / "tmp"

    def _path(self, key: str) -> Path:
        if not KEY.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    def scratch(self) -> Path:
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.scratch_root))

    def put(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, target)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def send(self, key: str, *, mimetype: str, as_attachment: bool, download_name: str) -> Response:
        path = self._path(key)
        if not path.is_file():
            raise not_found("file")
        response = send_file(
            path,
            mimetype=mimetype,
            as_attachment=as_attachment,
            download_name=download_name,
            conditional=True,
            etag=True,
        )
        response.headers["Content-Type"] = mimetype  # as stored, charset included: not added twice
        return response

    def sweep_scratch(self, older_than: timedelta) -> int:
        if not self.scratch_root.is_dir():
            return 0
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for entry in self.scratch_root.iterdir():
            if entry.stat().st_mtime >= cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed


def get_storage() -> Storage:
    """The application's storage, made on first use from `UPLOAD_FOLDER`."""
    storage = current_app.extensions.get("parley.storage")
    if storage is None:
        storage = current_app.extensions["parley.storage"] = LocalStorage(current_app.config["UPLOAD_FOLDER"])
    return storage
