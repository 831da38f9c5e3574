"""The ObjectStore contract, run against every implementation.

Implementations join by subclassing ``StoreContract`` and providing a ``store`` fixture.
"""

from __future__ import annotations

import os

import pytest

from core.errors import StorageError
from core.storage.local import (
    LocalStore,
    MissingObjectError,
    ObjectStore,
    check_key,
    frame_key,
    video_key,
)


class StoreContract:
    """Behaviour every ObjectStore must have."""

    def test_is_an_object_store(self, store):
        assert isinstance(store, ObjectStore)

    def test_put_get_roundtrip_with_progress(self, store, tmp_path):
        source = tmp_path / "src.bin"
        payload = os.urandom(3 * 1024 * 1024 + 17)
        source.write_bytes(payload)
        seen = []
        assert store.put_file("videos/ab/abc", source, seen.append) == len(payload)
        assert sum(seen) == len(payload)
        assert store.exists("videos/ab/abc")
        dest = tmp_path / "dest.bin"
        assert store.get_file("videos/ab/abc", dest) == len(payload)
        assert dest.read_bytes() == payload

    def test_missing_object(self, store, tmp_path):
        assert not store.exists("frames/1/0000.jpg")
        with pytest.raises(MissingObjectError, match="frames/1/0000.jpg"):
            store.get_file("frames/1/0000.jpg", tmp_path / "x")
        assert not (tmp_path / "x").exists()

    def test_delete_is_idempotent(self, store, tmp_path):
        source = tmp_path / "s"
        source.write_bytes(b"x")
        store.put_file("frames/2/0001.jpg", source)
        store.delete("frames/2/0001.jpg")
        store.delete("frames/2/0001.jpg")
        assert not store.exists("frames/2/0001.jpg")

    def test_location_names_the_object_and_refuses_foreign_keys(self, store):
        assert store.location("frames/7/0001.jpg").endswith("/frames/7/0001.jpg")
        with pytest.raises(ValueError):
            store.location("../outside")

    def test_sweep_partials_keeps_finished_objects(self, store, tmp_path):
        source = tmp_path / "s"
        source.write_bytes(b"kept")
        store.put_file("frames/4/0000.jpg", source)
        assert store.sweep_partials() == 0  # no writer died here
        assert store.exists("frames/4/0000.jpg")

    def test_overwrite_replaces(self, store, tmp_path):
        source = tmp_path / "s"
        source.write_bytes(b"one")
        store.put_file("frames/3/0000.jpg", source)
        source.write_bytes(b"two!")
        store.put_file("frames/3/0000.jpg", source)
        store.get_file("frames/3/0000.jpg", tmp_path / "d")
        assert (tmp_path / "d").read_bytes() == b"two!"

    def test_a_fetched_copy_outlives_overwrite_and_delete(self, store, tmp_path):
        source = tmp_path / "s"
        source.write_bytes(b"first")
        store.put_file("videos/cd/cde", source)
        fetched = tmp_path / "fetched"
        store.get_file("videos/cd/cde", fetched)
        source.write_bytes(b"second")
        store.put_file("videos/cd/cde", source)
        assert fetched.read_bytes() == b"first"
        fetched.unlink()  # the job's scratch folder goes; the object stays
        store.get_file("videos/cd/cde", fetched)
        assert fetched.read_bytes() == b"second"
        store.delete("videos/cd/cde")
        assert fetched.read_bytes() == b"second"

    def test_keys_from_users_are_refused(self, store, tmp_path):
        source = tmp_path / "s"
        source.write_bytes(b"x")
        for bad in ("../etc/passwd", "/abs", "videos/../../x", "My Video.mp4"):
            with pytest.raises(ValueError):
                store.put_file(bad, source)

    def test_describe_and_check(self, store):
        store.check()
        assert store.describe()


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return LocalStore(tmp_path / "objects")

    def test_nothing_half_written_when_the_write_fails(self, tmp_path):
        root = tmp_path / "objects"
        store = LocalStore(root)
        (root / "videos" / "ab" / "abc").mkdir(parents=True)  # the target cannot be replaced
        source = tmp_path / "s"
        source.write_bytes(b"x" * 100)
        with pytest.raises(StorageError, match="cannot write videos/ab/abc"):
            store.put_file("videos/ab/abc", source)
        assert [p.name for p in (root / "videos" / "ab").iterdir()] == ["abc"]

    def test_fetch_links_on_one_filesystem_and_copies_when_it_cannot(self, tmp_path,
                                                                     monkeypatch):
        store = LocalStore(tmp_path / "objects")
        source = tmp_path / "s"
        source.write_bytes(b"v" * 1000)
        store.put_file("videos/ab/abc", source)
        seen: list[int] = []
        linked = tmp_path / "linked"
        assert store.get_file("videos/ab/abc", linked, seen.append) == 1000 == sum(seen)
        stored = tmp_path / "objects" / "videos" / "ab" / "abc"
        assert linked.stat().st_ino == stored.stat().st_ino

        def no_links(src, dst):
            raise OSError(18, "Invalid cross-device link")  # EXDEV: another filesystem

        monkeypatch.setattr(os, "link", no_links)
        seen.clear()
        copied = tmp_path / "copied"
        assert store.get_file("videos/ab/abc", copied, seen.append) == 1000 == sum(seen)
        assert copied.stat().st_ino != stored.stat().st_ino
        assert copied.read_bytes() == b"v" * 1000

    def test_vanished_source_is_an_input_error(self, tmp_path):
        from core.errors import InputError
        with pytest.raises(InputError, match="vanished"):
            LocalStore(tmp_path / "o").put_file("videos/ab/x", tmp_path / "gone.mp4")


def test_keys_are_built_from_ids_and_hashes():
    assert video_key("ab" + "0" * 62) == f"videos/ab/ab{'0' * 62}"
    assert frame_key(12, 3) == "frames/12/0003.jpg"
    assert check_key(frame_key(1, 1))


@pytest.mark.parametrize("bad", ["videos/ab/abc\n", "frames/1/0000.jpg\n", "videos/ab\n/abc",
                                 "\nvideos/ab/abc"])
def test_check_key_refuses_newlines(bad):
    with pytest.raises(ValueError, match="invalid object key"):
        check_key(bad)
