"""Uploaded files: stored in memory with Telegram-like ids so getFile and downloads work."""

from __future__ import annotations

import mimetypes
import struct
from dataclasses import dataclass
from typing import Any

from bot.devtools.emulator.errors import bad_request

_PHOTO_SIDES = (90, 320, 800, 1280)


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    mime_type: str | None = None
    file_name: str | None = None

    def to_api(self) -> dict[str, Any]:
        """The Bot API ``File`` object returned by getFile."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG, or None when the bytes are no such image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return (512, 512)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


class FileStore:
    """Files by id; ids are deterministic so runs repeat exactly."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._count = 0

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, path: str) -> StoredFile | None:
        return self._by_path.get(path)

    def add(
        self, data: bytes, folder: str, *, file_name: str | None = None, mime: str | None = None
    ) -> StoredFile:
        self._count += 1
        suffix = ""
        if file_name and "." in file_name:
            suffix = "." + file_name.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=f"{folder[:4].upper()}AAQ{self._count:06d}",
            file_unique_id=f"AgAD{self._count:06d}",
            file_path=f"{folder}/file_{self._count}{suffix}",
            data=data,
            mime_type=mime,
            file_name=file_name,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def alias(self, file_id: str, stored: StoredFile) -> None:
        self._by_id[file_id] = stored

    def photo(self, value: Any) -> tuple[list[dict[str, Any]], bytes]:
        """PhotoSize list for an upload, a known file_id or a URL, plus the image bytes."""
        if isinstance(value, Upload):
            size = image_size(value.data)
            if size is None:
                raise bad_request("IMAGE_PROCESS_FAILED")
            stored = self.add(value.data, "photos", file_name=value.filename or "photo.jpg")
            return self._sizes(stored, *size), value.data
        known = self._known(value)
        size = image_size(known.data) or (800, 600)
        return self._sizes(known, *size), known.data

    def document(self, value: Any) -> tuple[dict[str, Any], bytes]:
        """Document object for an upload or a known file_id, plus its bytes."""
        if isinstance(value, Upload):
            if not value.data:
                raise bad_request("file must be non-empty")
            name = value.filename or "document"
            mime = value.content_type
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(name)[0] or mime or "application/octet-stream"
            stored = self.add(value.data, "documents", file_name=name, mime=mime)
        else:
            stored = self._known(value)
        doc = {
            "file_name": stored.file_name or "document",
            "mime_type": stored.mime_type or "application/octet-stream",
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        return doc, stored.data

    def _known(self, value: Any) -> StoredFile:
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self.add(b"", "photos", file_name=value.rsplit("/", 1)[-1] or "file")
        stored = self._by_id.get(value) if isinstance(value, str) else None
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return stored

    def _sizes(self, stored: StoredFile, width: int, height: int) -> list[dict[str, Any]]:
        longest = max(width, height, 1)
        sides = [s for s in _PHOTO_SIDES if s < longest] + [min(longest, 2560)]
        sizes = []
        for index, side in enumerate(sides):
            scale = side / longest
            file_id = stored.file_id if side == sides[-1] else f"{stored.file_id}_{index}"
            self.alias(file_id, stored)
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": f"{stored.file_unique_id}{index}",
                    "file_size": len(stored.data) if side == sides[-1] else len(stored.data) // 4,
                    "width": max(1, round(width * scale)),
                    "height": max(1, round(height * scale)),
                }
            )
        return sizes
