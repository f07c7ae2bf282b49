"""VDI contents as real bytes: one sparse file per VDI under the simulator's state directory.

The file is named after the VDI's uuid and is exactly ``virtual_size`` bytes long; holes read as
zeros, as a fresh VDI does on a real SR. Only the storage handlers and the HTTP transfer handlers
touch these files, always through this class.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

COPY_CHUNK = 4 * 1024 * 1024


class VdiStore:
    """The directory of VDI files; every method takes the VDI's uuid."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, uuid: str) -> Path:
        if not uuid or "/" in uuid or uuid.startswith("."):
            raise ValueError(f"not a VDI uuid: {uuid!r}")
        return self.root / f"{uuid}.img"

    def exists(self, uuid: str) -> bool:
        return self.path(uuid).exists()

    def create(self, uuid: str, size: int) -> None:
        """A sparse, all-zero file of ``size`` bytes (replacing any previous one)."""
        with open(self.path(uuid), "wb") as handle:
            handle.truncate(size)

    def ensure(self, uuid: str, size: int) -> Path:
        """The VDI's file, created empty at ``size`` if it does not exist yet."""
        path = self.path(uuid)
        if not path.exists():
            self.create(uuid, size)
        return path

    def resize(self, uuid: str, size: int) -> None:
        with open(self.ensure(uuid, size), "r+b") as handle:
            handle.truncate(size)

    def copy(self, source: str, target: str, size: int | None = None) -> None:
        """Copy contents, keeping holes where the source has them (zero blocks are skipped)."""
        src = self.path(source)
        if not src.exists():
            self.create(target, size or 0)
            return
        length = src.stat().st_size
        with open(src, "rb") as reader, open(self.path(target), "wb") as writer:
            writer.truncate(length if size is None else size)
            offset = 0
            zero = bytes(COPY_CHUNK)
            while offset < length:
                block = reader.read(COPY_CHUNK)
                if not block:
                    break
                if block != zero[: len(block)]:
                    writer.seek(offset)
                    writer.write(block)
                offset += len(block)

    def allocated(self, uuid: str) -> int:
        """Bytes really allocated on disk for the VDI (its ``physical_utilisation``)."""
        path = self.path(uuid)
        return path.stat().st_blocks * 512 if path.exists() else 0

    def remove(self, uuid: str) -> None:
        path = self.path(uuid)
        if path.exists():
            path.unlink()

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
