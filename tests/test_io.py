"""Crash-safe writes (:mod:`lmt.io`): complete or absent, with the permissions of a plain write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lmt.io import atomic_path, save_torch, write_json, write_text


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_of_a_plain_write(tmp_path: Path, umask: int) -> None:
    """mkstemp creates its file 0600; a result must be readable as any new file would be."""
    previous = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        write_text(tmp_path / "a.txt", "x")
        write_json(tmp_path / "b.json", {"x": 1})
        save_torch(tmp_path / "c.pt", torch.zeros(1))
    finally:
        os.umask(previous)
    expected = plain.stat().st_mode & 0o777
    assert expected == 0o666 & ~umask
    for name in ("a.txt", "b.json", "c.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(target.parent.iterdir()) == []
