"""The simulated MixMonitor writes like Asterisk: new files 0666 & ~umask, the directories
it has to create 0777 & ~umask (Asterisk's own umask, not ccd's).

Checked on a real Asterisk 22.10.1 (private rig started with umask 027, MixMonitor(
/tmp/.../acme/2026/12/x.wav,b) on a Local channel never bridged): the three missing
directories were created drwxr-x--- and the 44-byte file -rw-r-----."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ccd.sim.recording import write_wav


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"),
                         [(0o027, 0o640, 0o750), (0o007, 0o660, 0o770)])
def test_files_and_directories_follow_asterisks_umask(tmp_path: Path, umask: int,
                                                      file_mode: int, dir_mode: int) -> None:
    old = os.umask(0o022)  # this process's umask does not matter
    try:
        target = tmp_path / "acme" / "2026" / "x.wav"
        size = write_wav(target, 1.0, [(0.0, 1.0)], umask)
    finally:
        os.umask(old)
    assert size == target.stat().st_size == 44 + 16000
    assert mode(target) == file_mode
    assert mode(target.parent) == mode(target.parent.parent) == dir_mode
    # an existing file keeps its mode (Asterisk truncates, it does not chmod)
    os.chmod(target, 0o600)
    write_wav(target, 0.5, [], umask)
    assert mode(target) == 0o600
