"""Deterministic static archives (`.a`) of ELF relocatable objects, and the ELF checks.

# Format written (GNU `ar`, what `ar rcsD` writes)

```text
archive   = "!<arch>\\n" member*
member    = header data ["\\n" if len(data) is odd]
header    = name[16] mtime[12] uid[6] gid[6] mode[8] size[10] "`\\n"   (ASCII, space-padded)
```

- The first member is the symbol index `/`: a big-endian u32 count `N`, `N`
  big-endian u32 offsets of the member header defining each symbol, then the
  `N` symbol names, NUL-terminated, in member order then symbol-table order
  (what GNU `ar` writes), so linkers (GNU ld, lld) resolve from it.
- Names longer than 15 bytes go to the long-name member `//` (`name/\\n`
  entries) and are referred to as `/offset`; others are written `name/`.
- `mtime`, `uid`, `gid` are 0 and `mode` is `644` for every member; the
  index has mode `0` and the name table blank date, owner and mode fields,
  as `ar D` writes them.

The tests compare these bytes with GNU `ar rcsD` on the same objects.
"""

from __future__ import annotations

import struct

EM_X86_64 = 62
EM_AARCH64 = 183
ET_REL = 1
SHT_SYMTAB = 2
STB_GLOBAL, STB_WEAK = 1, 2
SHN_UNDEF = 0


class ArchiveError(Exception):
    """An object is not what the archive is for; the message names it."""


def elf_info(name: str, data: bytes) -> dict:
    """Class, data encoding, type and machine of an ELF file, checked to be ELF64 little-endian."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ArchiveError(f"{name}: not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ArchiveError(f"{name}: not a 64-bit little-endian ELF file (class {data[4]}, data {data[5]})")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    return {"type": e_type, "machine": e_machine}


def defined_symbols(name: str, data: bytes) -> list[str]:
    """Global and weak symbols an ELF64 LE relocatable object defines, in symbol-table order."""
    return _symbols(name, data, defined=True)


def undefined_symbols(name: str, data: bytes) -> list[str]:
    """Symbols an ELF64 LE relocatable object needs from elsewhere, sorted."""
    return sorted(set(_symbols(name, data, defined=False)))


def _symbols(name: str, data: bytes, defined: bool) -> list[str]:
    elf_info(name, data)
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shentsize != 64 or shoff + shnum * 64 > len(data):
        raise ArchiveError(f"{name}: bad section header table")
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * 64) for i in range(shnum)]
    out: list[str] = []
    for sh in sections:
        if sh[1] != SHT_SYMTAB:
            continue
        off, size, link, entsize = sh[4], sh[5], sh[6], sh[9]
        stroff = sections[link][4]
        if entsize != 24 or off + size > len(data):
            raise ArchiveError(f"{name}: bad symbol table")
        for j in range(1, size // 24):
            st_name, st_info, _other, st_shndx = struct.unpack_from("<IBBH", data, off + j * 24)
            if st_info >> 4 in (STB_GLOBAL, STB_WEAK) and (st_shndx != SHN_UNDEF) == defined and st_name:
                end = data.index(b"\0", stroff + st_name)
                out.append(data[stroff + st_name : end].decode())
    return out


def _header(name: str, size: int, mode: str, owner: str = "0") -> bytes:
    h = f"{name:<16}{owner:<12}{owner:<6}{owner:<6}{mode:<8}{size:<10}`\n".encode()
    if len(h) != 60:
        raise ArchiveError(f"archive member {name!r}: header field overflow")
    return h


def write_archive(members: list[tuple[str, bytes]]) -> bytes:
    """A GNU `ar` archive of `members` (name, ELF object bytes), with a symbol index."""
    names = [m[0] for m in members]
    if len(set(names)) != len(names):
        raise ArchiveError(f"archive: duplicate member names {names}")
    # Long-name table.
    longnames = b""
    ar_names = []
    for name in names:
        if "/" in name or not name:
            raise ArchiveError(f"archive: bad member name {name!r}")
        if len(name) > 15:
            ar_names.append(f"/{len(longnames)}")
            longnames += name.encode() + b"/\n"
        else:
            ar_names.append(name + "/")
    symbols = [(i, s) for i, (name, data) in enumerate(members) for s in defined_symbols(name, data)]
    strtab = b"".join(s.encode() + b"\0" for _, s in symbols)
    index_size = 4 + 4 * len(symbols) + len(strtab)
    pad = lambda n: n + (n & 1)  # noqa: E731
    # Offsets of each member header.
    pos = 8 + 60 + pad(index_size)
    if longnames:
        pos += 60 + pad(len(longnames))
    offsets = []
    for _, data in members:
        offsets.append(pos)
        pos += 60 + pad(len(data))
    out = bytearray(b"!<arch>\n")
    index = struct.pack(f">I{len(symbols)}I", len(symbols), *[offsets[i] for i, _ in symbols]) + strtab
    out += _header("/", len(index), "0") + index + (b"\n" if len(index) & 1 else b"")
    if longnames:
        out += _header("//", len(longnames), "", owner="") + longnames + (b"\n" if len(longnames) & 1 else b"")
    for ar_name, (_, data) in zip(ar_names, members):
        out += _header(ar_name, len(data), "644") + data + (b"\n" if len(data) & 1 else b"")
    return bytes(out)


def read_archive(data: bytes) -> list[tuple[str, bytes]]:
    """The members (name, bytes) of a GNU archive, without the index and name table."""
    if not data.startswith(b"!<arch>\n"):
        raise ArchiveError("not an ar archive")
    pos, longnames, out = 8, b"", []
    while pos < len(data):
        h = data[pos : pos + 60]
        name, size = h[:16].decode().rstrip(), int(h[48:58].decode())
        body = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name == "/":
            continue
        if name == "//":
            longnames = body
            continue
        if name.startswith("/"):
            off = int(name[1:])
            name = longnames[off : longnames.index(b"/\n", off)].decode()
        else:
            name = name[:-1]
        out.append((name, body))
    return out
