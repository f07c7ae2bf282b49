"""VHD files for the simulated dom0's vhd-util: create, read, write and inspect VHD chains.

Microsoft's VHD format as blktap's libvhd writes it (standard library only, Python 3.6, like
everything dom0 runs). A dynamic VHD is a footer copy (512 bytes), the dynamic header
(1024), for a differencing disk the parent locator's data, the block allocation table (BAT:
one big-endian uint32 sector offset per 2 MiB block, 0xFFFFFFFF when unallocated), the blocks
(a 512-byte sector bitmap, then the block's data) and the footer at the end.

Conventions taken from libvhd: the creator application is "tap\\0"; the footer byte after the
"saved state" byte is libvhd's hidden flag; a differencing disk names its parent three ways,
all written here: the parent's unique id and footer timestamp, the parent's file name in UTF-16
big-endian, and a "MacX" parent locator holding a file URL relative to the child's directory
("file://./parent.vhd"). A parent is found through the locator first, then the unicode name.

Partial sectors: write() reads the rest of a partly written sector from the disk as it reads
now (through the parent chain) and writes the whole sector, so a differencing disk never holds
a sector that is only partly its own.

Public functions: create, write, read, info; the Vhd class (an open file: footer, header, BAT)
is what the vhd-util stand-in and its checks (simvhdcheck) work on.
"""

import os
import struct
import time
import uuid as uuidlib

SECTOR = 512
BLOCK_SIZE = 2 * 1024 * 1024
BITMAP_SIZE = SECTOR  # 4096 sectors a block, one bit each: exactly one sector
FOOTER_SIZE = 512
HEADER_SIZE = 1024
UNUSED = 0xFFFFFFFF
NO_OFFSET = 0xFFFFFFFFFFFFFFFF
MAX_SIZE = 2040 * 1024 ** 3  # XAPI's largest VHD
MAX_CHAIN = 64  # deeper chains (or loops) are refused while reading through parents
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z, second 0 of VHD timestamps
FIXED, DYNAMIC, DIFFERENCING = 2, 3, 4
TYPE_NAMES = {FIXED: "fixed", DYNAMIC: "dynamic", DIFFERENCING: "differencing"}
FOOTER_COOKIE = b"conectix"
HEADER_COOKIE = b"cxsparse"
MACX = 0x4D616358  # "MacX": a UTF-8 file URL
LOCATOR_SPACE = 2 * SECTOR  # reserved for the MacX locator's data in a differencing disk
CREATOR_APP = b"tap\0"
CREATOR_VERSION = 0x00010003
CREATOR_OS = b"Wi2k"
HIDDEN_AT = 85  # libvhd's hidden byte: the footer byte after "saved state"

# cookie, features, format version, data offset, timestamp, creator app, version, OS,
# original size, current size, geometry, disk type, checksum, unique id, saved, hidden, reserved
FOOTER_STRUCT = struct.Struct(">8sIIQI4sI4sQQIII16sBB426s")
_FOOTER_SUM_AT = 64
# cookie, data offset, table offset, version, max table entries, block size, checksum,
# parent unique id, parent timestamp, reserved, parent unicode name, 8 locators, reserved
HEADER_STRUCT = struct.Struct(">8sQQIIII16sI4s512s192s256s")
_HEADER_SUM_AT = 36
_LOCATOR = struct.Struct(">IIIIQ")  # platform code, data space, data length, reserved, offset


def _may_look(path):
    """Whether the file path may be looked at: in a simulated dom0 (DOM0_ROOT set) only paths
    under its root, so that a locator cannot ask whether some file of the real machine exists."""
    root = os.environ.get("DOM0_ROOT", "")
    if not root:
        return True
    written = os.path.normpath(root).rstrip(os.sep) + os.sep
    real = os.path.realpath(root).rstrip(os.sep) + os.sep
    return os.path.normpath(path).startswith(written) and os.path.realpath(path).startswith(real)


class VhdError(ValueError):
    """A file that is not a VHD this module can use; the message names the part at fault."""


def vhd_time(seconds=None) -> int:
    """Seconds since 2000-01-01 UTC (the VHD epoch) for a Unix time, now by default."""
    now = time.time() if seconds is None else seconds
    return max(0, int(now) - VHD_EPOCH)


def checksum(raw: bytes, at: int) -> int:
    """The one's complement of the byte sum of a footer or header, its checksum field as 0."""
    return ~(sum(raw) - sum(raw[at:at + 4])) & 0xFFFFFFFF


def _with_checksum(raw: bytes, at: int) -> bytes:
    return raw[:at] + struct.pack(">I", checksum(raw, at)) + raw[at + 4:]


def geometry(size: int) -> int:
    """The footer's CHS geometry field for a disk of size bytes (the spec's algorithm)."""
    sectors = min(size // SECTOR, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        per_track, heads = 255, 16
    else:
        per_track = 17
        heads = max(4, (sectors // per_track + 1023) // 1024)
        if sectors // per_track >= heads * 1024 or heads > 16:
            per_track, heads = 31, 16
        if sectors // per_track >= heads * 1024:
            per_track, heads = 63, 16
    cylinders = sectors // per_track // heads
    return (cylinders << 16) | (heads << 8) | per_track


_FOOTER_FIELDS = ("cookie", "features", "version", "data_offset", "timestamp", "creator_app",
                  "creator_version", "creator_os", "original_size", "size", "geometry",
                  "disk_type", "stored_checksum", "unique_id", "saved", "hidden", "reserved")


def _named(values):
    return {name: values[index] for index, name in enumerate(_FOOTER_FIELDS)}


class Footer:
    """The 512-byte footer, its fields as attributes; pack() recomputes its checksum."""

    def __init__(self, size, disk_type, unique_id=None, timestamp=None, hidden=False):
        self.__dict__.update(_named((
            FOOTER_COOKIE, 2, 0x00010000, NO_OFFSET if disk_type == FIXED else FOOTER_SIZE,
            vhd_time() if timestamp is None else timestamp, CREATOR_APP, CREATOR_VERSION,
            CREATOR_OS, size, size, geometry(size), disk_type, 0,
            unique_id or uuidlib.uuid4().bytes, 0, 1 if hidden else 0, b"")))

    def pack(self) -> bytes:
        raw = FOOTER_STRUCT.pack(*(getattr(self, name) for name in _FOOTER_FIELDS))
        return _with_checksum(raw, _FOOTER_SUM_AT)

    @classmethod
    def unpack(cls, raw: bytes, where: str = "footer") -> "Footer":
        """Parse a footer; raises VhdError naming where (e.g. "backup footer") when invalid."""
        if len(raw) != FOOTER_SIZE:
            raise VhdError(f"{where}: file too short")
        footer = cls.__new__(cls)
        footer.__dict__.update(_named(FOOTER_STRUCT.unpack(raw)))
        if footer.cookie != FOOTER_COOKIE:
            raise VhdError(f"{where}: invalid cookie")
        if footer.stored_checksum != checksum(raw, _FOOTER_SUM_AT):
            raise VhdError(f"{where}: invalid checksum")
        if footer.disk_type not in TYPE_NAMES:
            raise VhdError(f"{where}: invalid disk type {footer.disk_type}")
        if footer.size % SECTOR or footer.size > MAX_SIZE:
            raise VhdError(f"{where}: invalid size {footer.size}")
        return footer


class Header:
    """The 1024-byte dynamic header, with the parent's id, name and locators."""

    def __init__(self, table_offset, entries):
        self.table_offset = table_offset
        self.entries = entries
        self.block_size = BLOCK_SIZE
        self.parent_id = bytes(16)
        self.parent_timestamp = 0
        self.parent_name = ""
        self.locators = [(0, 0, 0, 0, 0)] * 8

    def pack(self) -> bytes:
        name = self.parent_name.encode("utf-16-be")
        if len(name) > 512:
            raise VhdError(f"header: parent unicode name {self.parent_name!r} is too long")
        locators = b"".join(_LOCATOR.pack(*entry) for entry in self.locators)
        raw = HEADER_STRUCT.pack(HEADER_COOKIE, NO_OFFSET, self.table_offset, 0x00010000,
                           self.entries, self.block_size, 0, self.parent_id,
                           self.parent_timestamp, b"", name, locators, b"")
        return _with_checksum(raw, _HEADER_SUM_AT)

    @classmethod
    def unpack(cls, raw: bytes) -> "Header":
        """Parse a dynamic header; raises VhdError ("header: ...") when invalid."""
        if len(raw) != HEADER_SIZE:
            raise VhdError("header: file too short")
        (cookie, _data, table_offset, _version, entries, block_size, stored, parent_id,
         parent_timestamp, _res, name, locators, _res2) = HEADER_STRUCT.unpack(raw)
        if cookie != HEADER_COOKIE:
            raise VhdError("header: invalid cookie")
        if stored != checksum(raw, _HEADER_SUM_AT):
            raise VhdError("header: invalid checksum")
        if block_size != BLOCK_SIZE:
            raise VhdError(f"header: block size {block_size} is not 2 MiB")
        header = cls(table_offset, entries)
        header.parent_id = parent_id
        header.parent_timestamp = parent_timestamp
        header.parent_name = name.decode("utf-16-be", "replace").split("\0", 1)[0]
        header.locators = [_LOCATOR.unpack_from(locators, at) for at in range(0, 192, 24)]
        return header


class Vhd:
    """One VHD file opened for reading (and writing, if opened so): its footers, header, BAT.

    Like libvhd, a dynamic disk whose footer at the end is damaged opens through the footer
    copy at offset 0 (primary_error says what was wrong); the next metadata write restores it.
    """

    def __init__(self, path: str, writable: bool = False):
        self.path = path
        self.parent = None  # a Vhd, opened by parent_vhd()
        self._pending = []  # (offset, bytes) that save_metadata() writes besides the metadata
        self.file = open(path, "r+b" if writable else "rb")
        try:
            self._load()
        except BaseException:
            self.file.close()
            raise

    def _load(self):
        self.file_size = os.fstat(self.file.fileno()).st_size
        self.primary_error = None
        tail = FOOTER_SIZE if self.file_size % SECTOR != SECTOR - 1 else SECTOR - 1
        self.footer_at = self.file_size - tail
        if self.footer_at < 0:
            raise VhdError("footer: file too short to be a VHD")
        try:
            raw = self._read_at(self.footer_at, tail)
            self.footer = Footer.unpack(raw + bytes(FOOTER_SIZE - tail))
        except VhdError as error:
            self.primary_error = str(error)
            try:
                self.footer = Footer.unpack(self._read_at(0, FOOTER_SIZE), "backup footer")
            except VhdError:
                raise error from None
            if self.footer.disk_type == FIXED:
                raise error from None
        self.header = None
        self.bat = []
        if self.footer.disk_type == FIXED:
            if self.footer_at < self.footer.size:
                raise VhdError("footer: the file is shorter than the disk it describes")
            return
        if self.footer.data_offset + HEADER_SIZE > self.file_size:
            raise VhdError(f"footer: data offset {self.footer.data_offset} is beyond the end")
        self.header = Header.unpack(self._read_at(self.footer.data_offset, HEADER_SIZE))
        entries = self.header.entries
        if entries < -(-self.footer.size // BLOCK_SIZE):
            raise VhdError(f"BAT: {entries} entries are too few for the disk")
        if self.header.table_offset + entries * 4 > self.file_size:
            raise VhdError("BAT: lies beyond the end of the file")
        raw = self._read_at(self.header.table_offset, entries * 4)
        self.bat = list(struct.unpack(f">{entries}I", raw))
        if self.primary_error:
            self.footer_at = self.end_of_data()

    def close(self) -> None:
        if self.parent is not None:
            self.parent.close()
            self.parent = None
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_at(self, offset, length):
        self.file.seek(offset)
        return self.file.read(length)

    def _write_at(self, offset, data):
        self.file.seek(offset)
        self.file.write(data)

    # -- what the file says about itself --------------------------------------------------------

    @property
    def disk_type(self) -> int:
        return self.footer.disk_type

    def end_of_headers(self) -> int:
        """Where the metadata before the first block ends: BAT and locator data."""
        end = FOOTER_SIZE + HEADER_SIZE
        if self.header is None:
            return end
        end = max(end, self.header.table_offset + -(-self.header.entries * 4 // SECTOR) * SECTOR)
        for code, space, _length, _res, offset in self.header.locators:
            if code:
                end = max(end, offset + locator_space(space))
        return end

    def end_of_data(self) -> int:
        """Where the last block (or the metadata, without blocks) ends: the footer's place."""
        ends = [entry * SECTOR + BITMAP_SIZE + BLOCK_SIZE for entry in self.bat
                if entry != UNUSED]
        return max([self.end_of_headers()] + ends)

    def locators(self):
        """[(index, code, path)] of the locators that hold a path (MacX, as a URL's path)."""
        found = []
        for index, (code, space, length, _res, offset) in enumerate(self.header.locators):
            if code != MACX or not length:
                continue
            if length > locator_space(space) or offset + length > self.file_size:
                raise VhdError(f"locator {index}: data lies beyond its space or the file")
            url = self._read_at(offset, length).decode("utf-8", "replace").rstrip("\0")
            found.append((index, code, url[len("file://"):] if url.startswith("file://")
                          else url))
        return found

    def parent_path(self):
        """Absolute path of the parent (None without one): the MacX locator's, relative to this
        file's directory, if that file exists; else the unicode name's; else the locator's."""
        if self.disk_type != DIFFERENCING:
            return None
        directory = os.path.dirname(os.path.abspath(self.path))
        names = [path for _index, _code, path in self.locators()] + [self.header.parent_name]
        paths = [os.path.normpath(os.path.join(directory, name)) for name in names if name]
        if not paths:
            raise VhdError("locator: the differencing disk names no parent")
        return next((path for path in paths if _may_look(path) and os.path.isfile(path)),
                    paths[0])

    def info(self) -> dict:
        parent = self.parent_path()
        return {
            "uuid": str(uuidlib.UUID(bytes=self.footer.unique_id)),
            "size": self.footer.size,
            "type": TYPE_NAMES[self.disk_type],
            "parent": parent,
            "parent_uuid": str(uuidlib.UUID(bytes=self.header.parent_id)) if parent else None,
            "hidden": bool(self.footer.hidden),
            "timestamp": self.footer.timestamp,
        }

    # -- data ----------------------------------------------------------------------------------

    def parent_vhd(self, depth=0):
        """The parent, opened (once) for reading; VhdError if it is missing or the chain loops."""
        if self.parent is None:
            if depth >= MAX_CHAIN:
                raise VhdError(f"parent: chain longer than {MAX_CHAIN} (or a loop)")
            path = self.parent_path()
            if not os.path.isfile(path):
                raise VhdError(f"parent: {path} does not exist")
            self.parent = Vhd(path)
        return self.parent

    def _bitmap(self, block):
        at = self.bat[block] * SECTOR
        if at < FOOTER_SIZE or at + BITMAP_SIZE > self.file_size:
            raise VhdError(f"BAT: entry {block} ({self.bat[block]:#x}) lies outside the file")
        return self._read_at(at, BITMAP_SIZE)

    def read(self, offset: int, length: int, depth: int = 0) -> bytes:
        """The disk's bytes at [offset, offset + length), through the parent chain."""
        _check_range(self.footer.size, offset, length)
        if self.disk_type == FIXED:
            return self._read_at(offset, length)
        out = bytearray()
        end = offset + length
        while offset < end:
            block, inside = divmod(offset, BLOCK_SIZE)
            piece = min(end - offset, BLOCK_SIZE - inside)
            out += self._read_block(block, inside, piece, depth)
            offset += piece
        return bytes(out)

    def _read_block(self, block, inside, length, depth):
        if self.bat[block] == UNUSED:
            return self._from_below(block * BLOCK_SIZE + inside, length, depth)
        bitmap = self._bitmap(block)
        data_at = self.bat[block] * SECTOR + BITMAP_SIZE
        out = bytearray()
        last = (inside + length - 1) // SECTOR
        sector = inside // SECTOR
        while sector <= last:
            present = _bit(bitmap, sector)
            run_end = sector
            while run_end < last and _bit(bitmap, run_end + 1) == present:
                run_end += 1
            start = max(inside, sector * SECTOR)
            stop = min(inside + length, (run_end + 1) * SECTOR)
            if present:
                data = self._read_at(data_at + start, stop - start)
                out += data + bytes(stop - start - len(data))
            else:
                out += self._from_below(block * BLOCK_SIZE + start, stop - start, depth)
            sector = run_end + 1
        return bytes(out)

    def _from_below(self, offset, length, depth):
        if self.disk_type != DIFFERENCING:
            return bytes(length)
        return self.parent_vhd(depth).read(offset, length, depth + 1)

    def write(self, offset: int, data: bytes) -> None:
        """Write data at a virtual offset, allocating blocks after the last one as needed."""
        _check_range(self.footer.size, offset, len(data))
        if self.disk_type == FIXED:
            self._write_at(offset, data)
            return
        head = offset % SECTOR
        start = offset - head
        end = offset + len(data)
        tail = -end % SECTOR
        # Whole sectors only: the partly written ones are completed from what the disk reads now.
        data = (self.read(start, head) if head else b"") + bytes(data) + \
            (self.read(end, tail) if tail else b"")
        end += tail
        footer = self.footer.pack()
        done = 0
        while start + done < end:
            block, inside = divmod(start + done, BLOCK_SIZE)
            piece = min(end - start - done, BLOCK_SIZE - inside)
            self._write_block(block, inside, data[done:done + piece])
            done += piece
        self._write_at(self.footer_at, footer)
        self.file.flush()

    def _write_block(self, block, inside, data):
        if self.bat[block] == UNUSED:
            at = self.end_of_data()
            self._write_at(at, bytes(BITMAP_SIZE))
            self.bat[block] = at // SECTOR
            self._write_at(self.header.table_offset + block * 4, struct.pack(">I", at // SECTOR))
            self.footer_at = max(self.footer_at, at + BITMAP_SIZE + BLOCK_SIZE)
            self.file_size = max(self.file_size, self.footer_at + FOOTER_SIZE)
            self.file.truncate(self.file_size)
        base = self.bat[block] * SECTOR
        self._write_at(base + BITMAP_SIZE + inside, data)
        bitmap = bytearray(self._bitmap(block))
        for sector in range(inside // SECTOR, (inside + len(data)) // SECTOR):
            bitmap[sector // 8] |= 0x80 >> (sector % 8)
        self._write_at(base, bytes(bitmap))

    # -- metadata ------------------------------------------------------------------------------

    def save_metadata(self) -> None:
        """Write the footer (both copies), the header and pending locator data as they now are
        in memory; everything is packed (and so checked) before the first byte is written."""
        footer = self.footer.pack()
        header = self.header.pack() if self.header is not None else None
        for offset, data in self._pending:
            self._write_at(offset, data)
        self._pending = []
        if header is not None:
            self._write_at(0, footer)
            self._write_at(self.footer.data_offset, header)
        self._write_at(self.footer_at, footer)
        self.file.truncate(self.footer_at + FOOTER_SIZE)
        self.file_size = self.footer_at + FOOTER_SIZE
        self.file.flush()

    def point_at(self, parent_path: str) -> None:
        """Name parent_path as this differencing disk's parent (unique id, footer timestamp,
        unicode name, MacX locator), in memory until save_metadata(). VhdError if this is not a
        differencing disk, the parent is no VHD, or its name does not fit."""
        if self.disk_type != DIFFERENCING:
            raise VhdError(f"header: {self.path} is not a differencing disk")
        with Vhd(parent_path) as parent:
            parent_id, parent_timestamp = parent.footer.unique_id, parent.footer.timestamp
        name = os.path.basename(parent_path)
        relative = os.path.relpath(os.path.abspath(parent_path),
                                   os.path.dirname(os.path.abspath(self.path)))
        if not relative.startswith(".."):
            relative = "./" + relative
        url = ("file://" + relative).encode("utf-8")
        data_at = FOOTER_SIZE + HEADER_SIZE
        if len(url) > LOCATOR_SPACE or self.header.table_offset < data_at + LOCATOR_SPACE:
            raise VhdError(f"locator: no room for {url!r}")
        if len(name.encode("utf-16-be")) > 512:
            raise VhdError(f"header: parent unicode name {name!r} is too long")
        self.header.parent_id = parent_id
        self.header.parent_timestamp = parent_timestamp
        self.header.parent_name = name
        self.header.locators = [(MACX, LOCATOR_SPACE // SECTOR, len(url), 0, data_at)] + \
            [(0, 0, 0, 0, 0)] * 7
        self._pending = [(data_at, url + bytes(LOCATOR_SPACE - len(url)))]


def locator_space(space: int) -> int:
    """Bytes a locator reserves: its data space is in sectors, but some writers put bytes
    (libvhd takes a value below 512 as sectors)."""
    return space * SECTOR if space < SECTOR else space


def _bit(bitmap, sector):
    return bitmap[sector // 8] & (0x80 >> (sector % 8))


def _check_range(size, offset, length):
    if offset < 0 or length < 0 or offset + length > size:
        raise VhdError(f"range: {length} bytes at {offset} lie outside the {size}-byte disk")


def create(path: str, size_bytes: int, parent: str = None, uuid: str = None,
           hidden: bool = False) -> None:
    """Create a dynamic VHD of size_bytes (rounded up to a sector), or with parent a
    differencing VHD of the parent's size (size_bytes is then ignored) pointing at it.
    Refuses an existing path (FileExistsError); raises VhdError for a bad size or parent."""
    unique_id = uuidlib.UUID(uuid).bytes if uuid else None
    if parent is not None:
        with Vhd(parent) as below:
            size_bytes = below.footer.size
    size = -(-int(size_bytes) // SECTOR) * SECTOR
    if not 0 < size <= MAX_SIZE:
        raise VhdError(f"size: a VHD holds 1 byte to {MAX_SIZE} bytes, not {size_bytes}")
    entries = -(-size // BLOCK_SIZE)
    table_at = FOOTER_SIZE + HEADER_SIZE + (LOCATOR_SPACE if parent is not None else 0)
    table_bytes = -(-entries * 4 // SECTOR) * SECTOR
    footer = Footer(size, DIFFERENCING if parent is not None else DYNAMIC, unique_id,
                    hidden=hidden)
    header = Header(table_at, entries)
    layout = footer.pack() + header.pack() + bytes(table_at - FOOTER_SIZE - HEADER_SIZE) + \
        b"\xff" * table_bytes + footer.pack()
    # "x" mode: never replace a file, even one made since the caller looked.
    with open(path, "xb") as handle:
        handle.write(layout)
    if parent is None:
        return
    try:
        with Vhd(path, writable=True) as child:
            child.point_at(parent)
            child.save_metadata()
    except BaseException:
        os.unlink(path)
        raise


def write(path: str, offset: int, data: bytes) -> None:
    """Write data into the VHD at path at virtual offset (see the module docstring)."""
    with Vhd(path, writable=True) as vhd:
        vhd.write(offset, data)


def read(path: str, offset: int, length: int) -> bytes:
    """The virtual bytes [offset, offset + length) of the VHD at path, through its parents."""
    with Vhd(path) as vhd:
        return vhd.read(offset, length)


def info(path: str) -> dict:
    """uuid, size, type, parent, parent_uuid, hidden and timestamp of the VHD at path."""
    with Vhd(path) as vhd:
        return vhd.info()
