"""What enrolment, search, the CLI and the GUI need of a gallery's storage: :class:`GalleryStore`.

A gallery holds people (by name), their images (path, SHA-256, whether a usable face was found, face
size, detector step), one embedding per image and model version, and the aligned face each embedding
was made from (a thumbnail). Storage only stores and reads: ranking is the engine's
(:func:`forensic_face.engine.search.search_gallery`), enrolment the services' and wording the reports'.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np

from forensic_face.core.errors import GalleryError
from forensic_face.engine.search import Ranking, Searchable, Snapshot

__all__ = ["GalleryError", "GalleryMode", "GalleryStore", "ImageRecord", "StoredImage", "content_line",
           "content_sha256", "lines_sha256"]

#: "read": an existing gallery, read-only; "write": an existing gallery, to change; "create": enrolment
#: (opened, or created when missing).
GalleryMode = Literal["read", "write", "create"]


class StoredImage(NamedTuple):
    """An image row: its id, ``status`` ("ok", "no_face" or "unreadable") and why it is not "ok"."""

    id: int
    status: str
    message: str


class ImageRecord(NamedTuple):
    """An image row as :meth:`GalleryStore.images` lists it (for copying a gallery)."""

    id: int
    person: str
    path: str
    sha256: str
    status: str
    message: str
    face_px: float | None
    method: str | None


def content_line(name: str, image_sha256: str, vector_sha256: str) -> str:
    """One embedding's line of the ``content_sha256`` text (pure ASCII)."""
    return f"{json.dumps(name)}\t{image_sha256}\t{vector_sha256}\n"


def lines_sha256(lines: Iterable[str]) -> str:
    """The ``content_sha256`` of the embeddings' lines, given sorted."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
    return digest.hexdigest()


def content_sha256(entries: Iterable[tuple[str, str, bytes]]) -> str:
    """The ``content_sha256`` of :meth:`GalleryStore.identity` from (person name, image SHA-256, float32
    vector bytes) of every embedding of one model version."""
    return lines_sha256(sorted(content_line(name, image_sha256, hashlib.sha256(vector).hexdigest())
                               for name, image_sha256, vector in entries))


def arithmetic_key(model_version: str, arithmetic: str) -> str:
    """The gallery metadata key that says some of ``model_version``'s embeddings were made in ``arithmetic``
    (one key each, so two writers never overwrite each other's note)."""
    return f"arithmetic\t{model_version}\t{arithmetic}"


def arithmetic_of(model_version: str, meta: dict[str, str]) -> list[str]:
    """The arithmetics the metadata ``meta`` (key -> value) notes for ``model_version``, sorted."""
    prefix = arithmetic_key(model_version, "")
    return sorted(k[len(prefix):] for k in meta if k.startswith(prefix))


@runtime_checkable
class GalleryStore(Searchable, Protocol):
    """A gallery's storage, opened in a mode ("read", "write" or "create"); a context manager that closes it.
    Methods that change it raise GalleryError when it was opened for reading only."""

    def require_writable(self, what: str) -> None:
        """GalleryError, saying that ``what`` needs the gallery opened for writing, unless it is."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def info(self) -> dict:
        """``path``, ``people``, ``images``, ``images_by_status``, ``embeddings_by_model``, ``arithmetic_by_model``
        (model version -> the arithmetics its embeddings were noted as made in, sorted; empty when none was noted,
        as for imported vectors and older galleries), ``size_bytes``."""
        ...

    def no_face_images(self) -> list[str]:
        """Paths of the images that are not "ok", sorted."""
        ...

    def identity(self, model_version: str) -> dict:
        """What a search with ``model_version`` compares a probe against, for the chain of custody.

        Keys: ``path`` (absolute), ``schema`` (gallery schema version), ``created`` (when the gallery was
        made, ISO 8601), ``model_version``, ``people`` (people with an embedding of this version),
        ``people_enrolled`` (all people, whatever their embeddings), ``embeddings`` (of this version) and
        ``content_sha256``: the SHA-256 of the UTF-8 text made of one line per embedding of this version,
        ``json.dumps(person_name) + "\\t" + image_sha256 + "\\t" + sha256(vector bytes) + "\\n"`` (the
        name as a JSON string with ASCII escapes, the image file's SHA-256 as enrolled and the SHA-256 of
        the stored float32 vector, both lower-case hex), the lines sorted (:func:`content_sha256`). It
        depends on the enrolled content only: not on row ids, insertion order, thumbnails or other model
        versions. Up to date with changes made by any connection; what :meth:`rank` answers with.

        ``arithmetic``: the recognisers' arithmetic ("float32", "bfloat16") the version's embeddings were made
        in, each one that ever stored any of them, sorted (a note is never removed: embeddings replaced in
        another arithmetic add theirs; empty for embeddings stored without saying, as imported vectors and
        galleries enrolled before it was kept are). Kept beside the content, not in its checksum.

        ``search`` says how the store ranks: ``{"mode": "exact"}``, or ``{"mode": "hnsw", "m": ...,
        "ef_construction": ..., "ef_search": ...}`` for an approximate (HNSW) index. A server's store
        names the server and database (never a user or password)."""
        ...

    def person_id(self, name: str) -> int:
        """The id of the person of this name, added now unless another process just did."""
        ...

    def find_image(self, person_id: int, sha256: str) -> StoredImage | None:
        """This person's image with this SHA-256, if stored."""
        ...

    def has_embedding(self, image_id: int, model_version: str) -> bool: ...

    def add_image(self, person_id: int, path: str, sha256: str, status: str, message: str,
                  face_px: float | None, method: str | None) -> int:
        """The id of this person's image with this SHA-256, stored now unless another process just did."""
        ...

    def store_embeddings(self, model_version: str, embeddings: Sequence[tuple[int, np.ndarray, bytes]],
                         arithmetic: Sequence[str] = ()) -> None:
        """Store (image id, float32 vector, PNG of the aligned face or None) of each image at once, replacing
        any embedding of this model version those images had; ``arithmetic``: what the recognisers computed them
        in, added to the version's (:meth:`identity`) in the same transaction."""
        ...

    def thumbnail(self, image_id: int) -> bytes | None:
        """PNG of the aligned face that was embedded for a gallery image (None for imported vectors, and in
        galleries made before thumbnails were kept)."""
        ...

    def add_embeddings(self, person: str, vectors: np.ndarray, model_version: str,
                       paths: Iterable[str] | None = None) -> None:
        """Store precomputed embeddings (e.g. for benchmarks or imports), one image row each."""
        ...

    def images_to_reembed(self, model_version: str) -> list[tuple[int, str]]:
        """(id, path) of every image with a usable face that has no embedding of ``model_version``."""
        ...

    def images(self) -> Iterator[ImageRecord]:
        """Every image row, by id (read in batches)."""
        ...

    def embeddings(self, model_version: str) -> Iterator[tuple[int, np.ndarray]]:
        """(image id, float32 vector) of every embedding of ``model_version``, by image id (read in batches)."""
        ...


class IndexedStore:
    """What a store that reads a model's embeddings into one in-memory index (:meth:`snapshot`) answers from
    it: its identity and the exact ranking of every person. A base for such backends (the SQLite store)."""

    def snapshot(self, model_version: str) -> Snapshot:
        raise NotImplementedError

    def identity(self, model_version: str) -> dict:
        """GalleryStore.identity, of the snapshot (so it agrees with what is searched)."""
        return dict(self.snapshot(model_version).identity)

    def rank(self, model_version: str, query: np.ndarray, people: int) -> Ranking:
        """Searchable.rank: every person, scored on the snapshot's index (exact)."""
        snapshot = self.snapshot(model_version)
        return snapshot.index.ranking(query, snapshot.identity, snapshot.held)
