"""Make a layer's tree byte-identical on every machine before the final stage copies it (image build).

    python3 normalize_tree.py ROOT [EPOCH]

Every entry under ROOT (ROOT included) gets the modification time EPOCH (default 1980-01-01, the
oldest time a zip file can hold), owner root, and mode 0755 for directories and executables, 0644 for
other files: what the host's clock, umask and user would otherwise put into the layer. Byte-code caches
(__pycache__, *.pyc) and download leftovers (.cache/, .huggingface/) are removed. Only entries that
differ are changed: on overlay storage a metadata change copies a file up, which would double the size of
a weights layer whose files arrive already normalized.
Standard library only.
"""

import os
import shutil
import stat
import sys
from pathlib import Path

DEFAULT_EPOCH = 315532800
# huggingface_hub keeps its locks, metadata and partial files under .cache/ of the download folder.
LEFTOVER_DIRS = {"__pycache__", ".cache", ".huggingface"}
LEFTOVER_SUFFIXES = (".pyc", ".pyo")


def wanted_mode(st):
    if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111:
        return 0o755
    return 0o644


def normalize(root, epoch=DEFAULT_EPOCH):
    """Normalize ROOT in place; returns (entries changed, leftovers removed)."""
    root = Path(root)
    changed = removed = 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        for name in [d for d in dirnames if d in LEFTOVER_DIRS]:
            shutil.rmtree(os.path.join(dirpath, name))
            dirnames.remove(name)
            removed += 1
        for name in [f for f in filenames if f.endswith(LEFTOVER_SUFFIXES)]:
            os.unlink(os.path.join(dirpath, name))
            filenames.remove(name)
            removed += 1
    # Children first, so that setting a directory's time is the last change made inside it.
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames]:
            changed += _fix(os.path.join(dirpath, name), epoch)
    changed += _fix(str(root), epoch)
    return changed, removed


def _fix(path, epoch):
    st = os.lstat(path)
    fixed = 0
    if st.st_uid != 0 or st.st_gid != 0:
        os.lchown(path, 0, 0)
        fixed = 1
    if not stat.S_ISLNK(st.st_mode):
        mode = wanted_mode(st)
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
            fixed = 1
    if st.st_mtime_ns != epoch * 1_000_000_000:  # layers record no access time
        os.utime(path, ns=(epoch * 1_000_000_000, epoch * 1_000_000_000), follow_symlinks=False)
        fixed = 1
    return fixed


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: normalize_tree.py ROOT [EPOCH]", file=sys.stderr)
        return 2
    epoch = int(argv[2]) if len(argv) == 3 else DEFAULT_EPOCH
    changed, removed = normalize(argv[1], epoch)
    print(f"normalize_tree: {argv[1]}: {changed} entries normalized, {removed} leftovers removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
