"""The build context as a tar stream whose metadata is the same on every machine.

Docker's own context archive carries each file's modification time, mode and owner from the host: a fresh
checkout, another umask or a copied weights folder change them, and with them the files the weights stage
copies. Here every entry gets one time (``EPOCH``), owner root and mode 0755 (directories, executables) or
0644, so the stages' normalization (templates/normalize_tree.py) finds nothing to change: no file is copied
up on overlay storage just to reset its time, which would double the weights' disk use during the build.

The stream is produced while the engine reads it (no archive on disk), and honours ``.dockerignore`` the
way the Docker SDK does.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

# 1980-01-01T00:00:00Z, the oldest time a zip file can hold; the same value as templates/normalize_tree.py.
EPOCH = 315532800
CHUNK = 1 << 20


def dockerignore_patterns(context_dir: Path) -> list[str]:
    """The context's .dockerignore patterns (comments and blank lines dropped), read as the SDK does."""
    path = Path(context_dir) / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_paths(context_dir: Path) -> list[str]:
    """Relative paths (directories and files) that enter the context, sorted."""
    from docker.utils.build import exclude_paths

    return sorted(exclude_paths(str(context_dir), dockerignore_patterns(context_dir)))


def normalized_info(name: str, st: os.stat_result, link: str = "") -> tarfile.TarInfo | None:
    """A tar header for one entry with the fixed time, owner and mode (None: a kind the context skips)."""
    info = tarfile.TarInfo(name)
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISDIR(st.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, link
    elif stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    else:  # sockets, fifos, devices: the SDK's archive skips them too
        return None
    return info


def stream(context_dir: Path, paths: list[str] | None = None) -> Iterator[bytes]:
    """The context as tar bytes, chunk by chunk (files are read while the engine receives them)."""
    root = Path(context_dir)
    for rel in context_paths(root) if paths is None else paths:
        full = root / rel
        st = os.lstat(full)
        link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
        info = normalized_info(rel.replace(os.sep, "/"), st, link)
        if info is None:
            continue
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        if info.type != tarfile.REGTYPE:
            continue
        left = info.size
        with open(full, "rb") as handle:
            while left > 0:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{full} became shorter while the build context was sent")
                left -= len(chunk)
                yield chunk
        if info.size % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)
