"""Atomic writes: a failed folder swap restores the earlier folder."""

import os

import pytest

from stdo.fileio import replace_dir, temp_dir_beside


def test_a_swap_that_fails_part_way_restores_the_earlier_folder(tmp_path, monkeypatch):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "manifest.json").write_text("earlier")
    new = temp_dir_beside(target)
    (new / "manifest.json").write_text("new")
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the earlier folder is already moved aside; moving the new one in fails
            raise OSError("disk went away")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="disk went away"):
        replace_dir(new, target)
    monkeypatch.undo()
    assert (target / "manifest.json").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bundle", new.name])  # nothing hidden beside it
    replace_dir(new, target)
    assert (target / "manifest.json").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_swap_killed_between_its_renames_is_put_back_before_the_sweep(tmp_path):
    """replace_dir moves the earlier folder aside, then the new one in: a kill between the two leaves the earlier
    one in `.NAME.*.old` and no NAME. The next writer's sweep restores it instead of deleting it."""
    from stdo.locks import sweep_leftovers

    target = tmp_path / "bundle"
    target.mkdir()
    (target / "manifest.json").write_text("the earlier bundle")
    aside = tmp_path / ".bundle.k1ll3d.old"
    aside.mkdir()
    os.replace(target, aside / "bundle")  # the first rename, then the kill
    (tmp_path / ".bundle.n3w.tmp").mkdir()  # the new folder, never moved in
    sweep_leftovers(tmp_path, recursive=False, prefix=".bundle.")
    assert (target / "manifest.json").read_text() == "the earlier bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    aside.mkdir()  # with NAME in place (the kill came after both renames), an old copy is only a leftover
    (aside / "bundle").mkdir()
    sweep_leftovers(tmp_path, recursive=False, prefix=".bundle.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
