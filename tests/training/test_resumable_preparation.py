"""Preparing a training folder stops and resumes without losing or changing work, and its arrays live on
disk: what a user retraining on a folder the size of CASIA-WebFace (hours of preparation, arrays larger
than memory) relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensic_face.core.errors import CancelledError, ForensicFaceError
from forensic_face.core.progress import CancelToken, Progress


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory: pytest.TempPathFactory, make_face_folder) -> Path:
    """5 'people' x 2 images."""
    return make_face_folder(tmp_path_factory.mktemp("data") / "faces", 5, 2, seed=1, lighting=False)


def stopping_after(updates: int, seen: list) -> Progress:
    """A progress that records each ``done`` it is told and asks to cancel after ``updates`` of them."""
    token = CancelToken()

    def callback(done: int, total: int, message: str) -> None:
        seen.append(done)
        if len(seen) >= updates:
            token.cancel()

    return Progress(callback, token)


def test_face_cache_build_resumes_where_it_stopped_and_ends_as_an_uninterrupted_build(
        small_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.training import lfw

    monkeypatch.setattr(lfw, "CACHE_CHUNK", 2)  # 5 chunks of 2 images
    index = lfw.index_folder(small_folder)
    monkeypatch.setenv("FORENSIC_FACE_CACHE", str(tmp_path / "whole"))
    whole = lfw.build_face_cache(index)

    monkeypatch.setenv("FORENSIC_FACE_CACHE", str(tmp_path / "stopped"))
    first: list = []
    with pytest.raises(CancelledError):
        lfw.build_face_cache(index, stopping_after(2, first))
    assert first == [2, 4]  # cancelled after two chunks; the third, under way, is finished and kept
    assert not lfw.face_cache_path(index).exists()
    partial = lfw.face_cache_path(index).with_suffix(".partial")
    assert np.load(partial / "done.npy").tolist() == [True, True, True, False, False]

    second: list = []
    resumed = lfw.build_face_cache(index, stopping_after(99, second))
    assert second == [8, 10]  # only the two chunks left were computed
    assert not lfw.face_cache_path(index).with_suffix(".partial").exists()
    assert sorted(resumed) == sorted(whole)
    for k in whole:
        assert np.array_equal(resumed[k], whole[k], equal_nan=k == "teacher"), k
    assert np.isfinite(whole["teacher"]).all() and (whole["boxes"][:, 2] > whole["boxes"][:, 0]).all()


def test_training_arrays_resume_on_disk_and_equal_those_made_in_memory(
        small_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.training import dataset, lfw

    monkeypatch.setenv("FORENSIC_FACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dataset, "CHUNK", 3)  # 4 chunks: 3 + 3 + 3 + 1 rows
    index = lfw.index_folder(small_folder)
    cache = lfw.build_face_cache(index)
    rows = np.arange(10)
    kw = {"size": 32, "variants": 3, "seed": 4, "workers": 1}
    in_memory = dataset.prepare_faces(index, cache, rows, **kw)

    folder = tmp_path / "arrays"
    seen: list = []
    with pytest.raises(CancelledError):
        dataset.prepare_faces(index, cache, rows, **kw, folder=folder, progress=stopping_after(2, seen))
    assert seen == [3, 6]
    assert np.load(folder / "done.npy").tolist() == [True, True, True, False]

    seen = []
    on_disk = dataset.prepare_faces(index, cache, rows, **kw, folder=folder, progress=stopping_after(99, seen))
    assert seen == [10]
    for a, b in zip(on_disk, in_memory, strict=True):
        assert isinstance(a, np.memmap) and np.array_equal(a, b)
    assert on_disk[1].std() > 10  # real degraded faces, not the zeros of a fresh file
    with pytest.raises(ValueError):
        on_disk[0][0, 0, 0] = 1  # the prepared arrays are read-only

    # finished: a third call computes and writes nothing
    stamps = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    seen = []
    again = dataset.prepare_faces(index, cache, rows, **kw, folder=folder, progress=stopping_after(99, seen))
    assert seen == [] and np.array_equal(again[2], in_memory[2])
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == stamps
    # other settings in the same folder start it afresh instead of mixing the two
    other = dataset.prepare_faces(index, cache, rows, **{**kw, "variants": 2}, folder=folder)
    assert other[1].shape == (10, 2, 32, 32)


def test_a_damaged_folder_is_started_afresh_and_a_full_disk_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.training import chunked
    from forensic_face.training.chunked import ChunkedArrays

    specs = {"x": ((4, 3), "u1", 0), "y": ((4,), "f4", np.nan)}
    store = ChunkedArrays.on_disk(tmp_path / "a", specs, 2)
    store.put(0, slice(0, 2), {"x": np.full((2, 3), 7), "y": np.ones(2)})
    store.checkpoint()
    del store
    (tmp_path / "a" / "x.npy").write_bytes(b"not an array")  # damaged (a crash mid-write, a disk error)
    store = ChunkedArrays.on_disk(tmp_path / "a", specs, 2)
    assert store.pending() == [0, 1] and np.isnan(store.arrays["y"]).all()

    monkeypatch.setattr(chunked.shutil, "disk_usage", lambda p: type("U", (), {"free": 10_000})())
    big = {"x": ((1000, 64, 64), "u1", 0)}
    with pytest.raises(ForensicFaceError, match=r"needs 4\.1 MB .* only 10 kB is free.*FORENSIC_FACE_CACHE"):
        ChunkedArrays.on_disk(tmp_path / "b", big, 10)
    assert not (tmp_path / "b").exists()


def test_gather_from_a_file_gives_what_indexing_gives(tmp_path: Path) -> None:
    from forensic_face.training.chunked import gather

    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (50, 3, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "a.npy", data)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    idx, sub = rng.permutation(50)[:17], rng.integers(0, 3, 17)
    for array in (data, mapped):
        assert np.array_equal(gather(array, idx, sub), data[idx, sub])
        assert np.array_equal(gather(array, idx), data[idx])
    assert gather(mapped, np.array([], int), np.array([], int)).shape == (0, 8, 8)


def test_two_preparations_of_one_folder_take_turns(tmp_path: Path) -> None:
    import threading

    from forensic_face.training.chunked import exclusive

    pytest.importorskip("fcntl", reason="the preparation lock is POSIX-only (fcntl)")
    entered = threading.Event()

    def second() -> None:
        with exclusive(tmp_path / "arrays"):
            entered.set()

    with exclusive(tmp_path / "arrays"):
        other = threading.Thread(target=second)
        other.start()
        assert not entered.wait(0.5)  # the second waits while the first prepares
    assert entered.wait(10)  # and goes on once the first is done
    other.join()
