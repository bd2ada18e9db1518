"""The gallery: known people, their images and embeddings, in a store that :func:`open_gallery` chooses by
the location's form (a database file's path: SQLite, :mod:`.sqlite`; a ``postgresql://`` URL: a
PostgreSQL server with pgvector, :mod:`.postgres`). Every store implements
:class:`GalleryStore` (:mod:`.protocol`); a new backend is a module implementing it and a line in
``_BACKENDS``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from forensic_face.store.gallery.postgres import PostgresGallery
from forensic_face.store.gallery.postgres import public_location as public_url
from forensic_face.store.gallery.protocol import GalleryError, GalleryMode, GalleryStore
from forensic_face.store.gallery.sqlite import SQLiteGallery

__all__ = ["GalleryError", "GalleryMode", "GalleryStore", "describe_info", "open_gallery", "public_location"]

#: The backend of each location scheme ("scheme://..."); "" for a file path.
_BACKENDS: dict[str, Callable[..., GalleryStore]] = {
    "": SQLiteGallery,
    "postgresql": PostgresGallery, "postgres": PostgresGallery,
}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def public_location(location: str | os.PathLike) -> str:
    """A gallery's location as it may be shown or stored: a server URL without any password in it (a file's
    path as it is)."""
    text = os.fspath(location)
    return public_url(text) if _SCHEME.match(text) else text


def describe_info(info: dict) -> list[str]:
    """A gallery's :meth:`GalleryStore.info` as lines for a person: where it is, its people and images, its
    size, then one line per model version with its embeddings and the arithmetic they were made in."""
    statuses = ", ".join(f"{k} {v}" for k, v in info["images_by_status"].items())
    lines = [f"{info['path']}: {info['people']} people, {info['images']} images"
             + (f" ({statuses})" if statuses else "") + f", {info['size_bytes'] / 1e6:.1f} MB"]
    for model, n in info["embeddings_by_model"].items():
        made = info.get("arithmetic_by_model", {}).get(model)
        lines.append(f"  embeddings of model {model}: {n}"
                     + (f" (made in {' and '.join(made)} arithmetic)" if made else " (arithmetic not noted)"))
    if not info["embeddings_by_model"]:
        lines.append("  no embeddings yet")
    return lines


def open_gallery(location: str | os.PathLike, mode: GalleryMode = "read") -> GalleryStore:
    """The gallery at ``location`` opened in ``mode``: "read" (the default: an existing gallery, read-only),
    "write" (an existing gallery, to change) or "create" (enrolment: created when missing). GalleryError
    for a location no backend opens or that is not a gallery; ValueError for another mode."""
    text = os.fspath(location)
    found = _SCHEME.match(text)
    scheme = found.group(1).lower() if found else ""
    if scheme not in _BACKENDS:
        raise GalleryError(f"{text}: no gallery is kept at {scheme}:// locations; a gallery is a database file "
                           "(give its path) or a postgresql:// URL")
    return _BACKENDS[scheme](location, mode=mode)
