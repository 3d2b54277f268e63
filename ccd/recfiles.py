"""Recording files: where they may be, and how ccd opens, creates and deletes them.

Every recording belongs to one tenant and must lie inside that tenant's directory,
``<recording.dir>/<tenant slug>/``. The path comes from Asterisk (``MIXMONITOR_FILENAME``)
and is therefore data from the network: ccd never trusts it.

* **Indexing** (:func:`locate`): the path is resolved (symbolic links, ``..``) and must be
  inside ``<recording.dir>/<slug>/``; the resolved path is what gets indexed. Whether
  ``<slug>`` is the call's own tenant is decided with the call's row (``ccd.store.recindex``).
* **Using** (:func:`open_recording`, :func:`remove_recording`): an indexed path is checked
  again, lexically, against the tenant's directory, then reached one directory at a time
  from ``recording.dir`` with ``O_NOFOLLOW``: a symbolic link anywhere below
  ``recording.dir`` (planted after indexing, say) is refused, never followed, so an export
  cannot copy and retention cannot delete anything outside the tenant's directory.
* **Creating** (:func:`ensure_dirs`): the directories ccd creates get ``recording.dir_mode``
  (0750 by default) whatever the process umask; files are written by Asterisk with its own
  umask (README: *Recording files and permissions*).

A refusal is a :class:`Refused` with a reason for the log.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

#: tenant slugs (sql/001 tenants.slug CHECK)
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DIR_MODE = 0o750
#: exported copies (``ccd recordings export``)
FILE_MODE = 0o640
WAV_HEADER = 44
_MAX_PATH = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Refused(Exception):
    """A recording path outside its tenant's directory (or otherwise unusable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def real_root(root: Path | str) -> Path:
    """``recording.dir`` with every symbolic link resolved (absolute)."""
    return Path(os.path.realpath(os.fspath(root)))


def _plain(raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise Refused("empty recording path")
    if len(raw) > _MAX_PATH:
        raise Refused("recording path longer than 4096 characters")
    if _CONTROL.search(raw):
        raise Refused("control characters in the recording path")
    if not raw.startswith("/"):
        raise Refused("not an absolute path")
    return raw


def locate(raw: object, root: Path) -> tuple[str, str]:
    """Index time: ``(resolved path, tenant slug)`` of a recording path, or :class:`Refused`.

    ``root`` must already be resolved (:func:`real_root`). The path is resolved with
    ``realpath`` (a file that does not exist yet is resolved as far as it exists), then it
    must be a file name inside ``<root>/<slug>/``.
    """
    path = _plain(raw)
    resolved = Path(os.path.realpath(path))
    try:
        rel = resolved.relative_to(root)
    except ValueError:
        where = " (after resolving links)" if str(resolved) != os.path.normpath(path) else ""
        raise Refused(f"outside recording.dir {root}{where}: {resolved}") from None
    if len(rel.parts) < 2:
        raise Refused(f"not inside a tenant's directory ({root}/<tenant>/...)")
    if not SLUG.fullmatch(rel.parts[0]):
        raise Refused(f"{rel.parts[0]!r} under {root} is not a tenant's directory")
    return str(resolved), rel.parts[0]


def tenant_parts(path: str, root: Path, slug: str) -> tuple[str, ...]:
    """Use time: the components of an indexed ``path`` below ``root`` (slug first), checked
    lexically to be a file inside ``<root>/<slug>/``; :class:`Refused` otherwise."""
    p = _plain(path)
    if os.path.normpath(p) != p:
        raise Refused("'.', '..' or '//' in an indexed path")
    if not SLUG.fullmatch(slug):
        raise Refused(f"{slug!r} is not a tenant slug")
    try:
        rel = Path(p).relative_to(root / slug)
    except ValueError:
        raise Refused(f"not inside tenant {slug}'s directory {root / slug}/") from None
    if not rel.parts:
        raise Refused("the tenant's directory itself is not a recording")
    return (slug, *rel.parts)


@contextlib.contextmanager
def _directory(root: Path, parts: tuple[str, ...]) -> Iterator[int]:
    """An fd of ``root/parts...``, each step opened with ``O_NOFOLLOW``."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            try:
                nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(f"{name!r} on the way is a symbolic link or not a "
                                  "directory") from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def open_recording(path: str, root: Path, slug: str) -> tuple[int, os.stat_result]:
    """Open an indexed recording for reading: ``(fd, stat)``; the caller closes the fd.

    :class:`Refused` when it is outside ``<root>/<slug>/``, reached through a symbolic
    link, not a regular file, or has other hard links (its content may be another
    file's); ``FileNotFoundError`` when it is missing.
    """
    *dirs, name = tenant_parts(path, root, slug)
    with _directory(root, tuple(dirs)) as dfd:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused("the file is a symbolic link") from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file")
        if st.st_nlink > 1:
            raise Refused(f"the file has {st.st_nlink} hard links (it may be another file)")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def remove_recording(path: str, root: Path, slug: str, dry_run: bool = False) -> int:
    """Delete an indexed recording; its size. Only a regular file inside ``<root>/<slug>/``
    reached without following links is deleted (:class:`Refused` otherwise);
    ``FileNotFoundError`` when it is already gone. A hard link is only a name: deleting it
    never touches another file's content, so it is allowed here."""
    *dirs, name = tenant_parts(path, root, slug)
    with _directory(root, tuple(dirs)) as dfd:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise Refused("the file is a symbolic link")
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file")
        if not dry_run:
            os.unlink(name, dir_fd=dfd)
    return st.st_size


def content(fd: int, size: int) -> str:
    """``audio``, ``header-only`` (a WAV header and no samples, what MixMonitor leaves for
    a channel never bridged) or ``empty``."""
    if size == 0:
        return "empty"
    head = os.pread(fd, WAV_HEADER, 0)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and size <= WAV_HEADER:
        return "header-only"
    return "audio"


def ensure_dirs(root: Path, directory: Path, mode: int = DIR_MODE) -> list[Path]:
    """Create ``directory`` (and its parents up to ``root``, root included) with ``mode``,
    whatever the umask; existing directories are left as they are. The created ones."""
    directory = Path(os.path.abspath(directory))
    root = Path(os.path.abspath(root))
    if directory != root and not directory.is_relative_to(root):
        raise Refused(f"{directory} is not under recording.dir {root}")
    todo: list[Path] = []
    p = directory
    while not p.is_dir():
        todo.append(p)
        if p == root or p.parent == p:
            break
        p = p.parent
    made: list[Path] = []
    for d in reversed(todo):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            continue
        os.chmod(d, mode)  # the umask may have taken bits away; setgid is kept by chmod
        made.append(d)
    return made
