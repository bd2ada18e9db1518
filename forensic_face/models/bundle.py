"""The model bundle: the format the trained networks are shipped and loaded in.

Weights are stored as a plain tensor dictionary (``models.pt``, float16, read with
``torch.load(weights_only=True)``: no pickled code) beside ``models.json`` (configurations,
calibration, training record, the SHA-256 of the weights file). :func:`load_networks` checks the
digest before it reads a tensor and rebuilds the networks from their own stored configurations.

``models.json``'s ``recogniser`` names the recogniser's architecture (a key of :data:`RECOGNISERS`) and
where its weights came from; a bundle without it (every bundle written before it existed) holds the
project's own CNN, :data:`DEFAULT_ARCHITECTURE`. A new backbone is its definition plus one line there: the
network says how its faces are aligned (``alignment``, an AlignSpec mode) and gives the engine a copy that takes
its grey 0..1 faces (``for_inference()``); the engine and the probe path need nothing else.

``models.json``'s ``companion`` (optional) joins a second recogniser to the first (:class:`Companion`, tensors
``comp.*``), and its ``sharp`` (optional) a third, for sharp probes (:class:`Sharp`, tensors ``sharp.*`` where they
differ from the recogniser's); ``recogniser.mirror`` says whether a face is embedded with its mirror image (the
default).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensic_face.core.errors import ForensicFaceError, ModelsNotTrainedError
from forensic_face.core.hashing import sha256_file
from forensic_face.models.calibration import MatchCalibration, sharpness_feature
from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig
from forensic_face.models.sface import SFaceConfig, SFaceNet
from forensic_face.paths import models_dir

WEIGHTS_FILE = "models.pt"
META_FILE = "models.json"

#: Recogniser architectures by the name ``models.json`` stores: (network class, its configuration class);
#: the network is ``cls(config_cls(**meta["rec"]))``.
RECOGNISERS: dict[str, tuple[type[torch.nn.Module], type]] = {
    "ff-cnn": (Recogniser, RecogniserConfig),
    "sface": (SFaceNet, SFaceConfig),
}
#: The architecture of a bundle whose ``models.json`` names none.
DEFAULT_ARCHITECTURE = "ff-cnn"


def recogniser_architecture(rec: torch.nn.Module) -> str:
    """The registry name of a recogniser network; raises ForensicFaceError for an unregistered class."""
    for name, (cls, _) in RECOGNISERS.items():
        if type(rec) is cls:
            return name
    raise ForensicFaceError(f"{type(rec).__name__} is not a registered recogniser ({', '.join(RECOGNISERS)})")


def build_recogniser(meta: dict) -> torch.nn.Module:
    """The recogniser network ``models.json`` describes (architecture by name, configuration), untrained."""
    name = (meta.get("recogniser") or {}).get("architecture", DEFAULT_ARCHITECTURE)
    if name not in RECOGNISERS:
        raise ForensicFaceError(f"the bundle's recogniser architecture {name!r} is unknown to this version "
                                f"(known: {', '.join(RECOGNISERS)})")
    cls, config_cls = RECOGNISERS[name]
    return cls(config_cls(**meta["rec"]))


#: What a recogniser embeds: the autoencoder's reconstruction (the project's own CNN, trained on them) or the
#: face as found, in its own crop (a network distilled on degraded faces). ``models.json``'s
#: ``recogniser.embeds``; a bundle without it embeds the reconstruction.
EMBEDS = ("reconstruction", "input")


def recogniser_embeds(meta: dict) -> str:
    """``reconstruction`` or ``input`` (see :data:`EMBEDS`) for the bundle ``meta`` describes."""
    embeds = (meta.get("recogniser") or {}).get("embeds", "reconstruction")
    if embeds not in EMBEDS:
        raise ForensicFaceError(f"the bundle's recogniser embeds {embeds!r}, unknown to this version "
                                f"(known: {', '.join(EMBEDS)})")
    return embeds


def recogniser_mirror(meta: dict) -> bool:
    """Whether the engine averages each face's embedding with its mirror image's (``models.json``'s
    ``recogniser.mirror``; every bundle before it existed did). Twice the recogniser's work per face."""
    mirror = (meta.get("recogniser") or {}).get("mirror", True)
    if not isinstance(mirror, bool):
        raise ForensicFaceError(f"the bundle's recogniser.mirror must be true or false, not {mirror!r}")
    return mirror


def probe_share(sharpness, probe_weight: tuple[float, float], quality_range: tuple[float, float]) -> np.ndarray:
    """A probe's companion share l from its sharpness: ``probe_weight`` = (at the blurred end, at the sharp end),
    linear in q = log(1 + sharpness) over ``quality_range``, clipped there (:class:`Companion`)."""
    lo, hi = quality_range
    t = np.clip((sharpness_feature(np.asarray(sharpness, np.float64)) - lo) / (hi - lo), 0.0, 1.0)
    return probe_weight[0] + (probe_weight[1] - probe_weight[0]) * t


def mean_weights(share, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """The recogniser's and the companion's weights (summing to 1) in a probe's similarity, the weighted mean of
    the two cosines that :meth:`Companion.query` makes, at the probe's share ``share`` and the gallery side's
    ``weight``."""
    share = np.asarray(share, np.float64)
    a, b = np.sqrt((1.0 - share) * (1.0 - weight)), np.sqrt(share * weight)
    return a / (a + b), b / (a + b)


#: A sharp part's tensors are stored (``sharp.*``) only where they differ from the recogniser's by more than this
#: (absolute, after float16 rounding); elsewhere it takes the recogniser's. SFace as published and the shipped student
#: share the stem, blocks 0-5 and the embedding layer to within 1.5e-5 (float16 storage rounds them by about as much).
SHARP_TENSOR_TOLERANCE = 1e-4


@dataclass
class Sharp:
    """A third recogniser joined to the first two for sharp probes (``models.json``'s ``companion.sharp``): SFace as
    published beside the student tuned for degraded faces, since the student lost some of its clean-face accuracy
    (issue 24: "fuse the teacher's and the student's scores by the measured probe quality"). It embeds the face as
    found, in the recogniser's crop. Of the recogniser side's similarity, a probe gives it the share
    t = ``share`` x clip((q - lo) / (hi - lo), 0, 1), q = log(1 + sharpness) over ``quality_range`` (lo, hi): 0 for a
    blurred probe, ``share`` for one as sharp as a clean face. A gallery face holds its embedding at ``weight`` of the
    recogniser side's squared length (any weight gives the same similarities; :meth:`Companion.joined`).

    ``cross`` b: of the recogniser's cosine, the share taken against the gallery face's sharp embedding instead of its
    own: the recogniser's term becomes (1 - b) S(p).S(g) + b S(p).T(g) (the student S was tuned to land on SFace's T
    embedding of the clean face; ``research/asymmetric/``). A probe's query alone carries it (:meth:`Companion.query`):
    a gallery face's embedding is the same as without it. 0: the form before it."""

    net: torch.nn.Module
    share: float  # T: its share of the recogniser side's similarity for a sharp probe, 0 < T <= 1
    quality_range: tuple[float, float]  # (lo, hi): the share is 0 at q <= lo, T at q >= hi
    weight: float = 0.5  # u: its share of a gallery face's recogniser side (squared length), 0 < u < 1
    mirror: bool = True
    source: str = ""
    cross: float = 0.0  # b: the recogniser's share of its cosine against the gallery's sharp embedding, 0 <= b < 1

    def describe(self) -> dict:
        out = {"architecture": recogniser_architecture(self.net), "source": self.source, "embeds": "input",
               "mirror": bool(self.mirror), "weight": float(self.weight), "share": float(self.share),
               "quality_range": [float(v) for v in self.quality_range], "config": self.net.config.as_dict()}
        if self.cross:  # absent at 0, so a bundle of the form before keeps its version
            out["cross"] = float(self.cross)
        return out

    def probe_shares(self, sharpness) -> np.ndarray:
        """Each probe's t (its share of the recogniser side's similarity) from its sharpness."""
        lo, hi = self.quality_range
        q = sharpness_feature(np.atleast_1d(np.asarray(sharpness, np.float64)))
        return self.share * np.clip((q - lo) / (hi - lo), 0.0, 1.0)

    @classmethod
    def from_spec(cls, net: torch.nn.Module, spec: dict) -> Sharp:
        cls.check(spec)
        lo, hi = spec["quality_range"]
        return cls(net, float(spec["share"]), (float(lo), float(hi)), float(spec.get("weight", 0.5)),
                   spec.get("mirror", True), spec.get("source", ""), float(spec.get("cross", 0.0)))

    @classmethod
    def check(cls, spec: dict) -> None:
        """Raises ForensicFaceError for a sharp entry this version cannot use."""
        t, u, qr, b = spec.get("share"), spec.get("weight", 0.5), spec.get("quality_range"), spec.get("cross", 0.0)
        ok = (isinstance(t, int | float) and 0.0 < float(t) <= 1.0 and isinstance(u, int | float)
              and isinstance(b, int | float) and not isinstance(b, bool) and 0.0 <= float(b) < 1.0
              and 0.0 < float(u) < 1.0 and isinstance(qr, list | tuple) and len(qr) == 2
              and all(isinstance(v, int | float) for v in qr) and qr[0] < qr[1]
              and spec.get("embeds", "input") == "input" and isinstance(spec.get("mirror", True), bool))
        if not ok:
            raise ForensicFaceError(f"the bundle's sharp recogniser needs a share in (0, 1], a gallery weight in "
                                    f"(0, 1), a quality range low < high and a cross share in [0, 1), and embeds the "
                                    f"face as found; got share {t!r}, weight {u!r}, quality_range {qr!r}, cross {b!r}")


@dataclass
class Companion:
    """A second recogniser whose similarity joins the first's (``models.json``'s ``companion``). The searched
    embedding is the two unit embeddings side by side, scaled by sqrt(1 - l) and sqrt(l): a unit vector again. A
    gallery face takes l = ``weight``; a probe takes l = ``weight`` too, or, with ``probe_weight`` = (at the
    blurred end, at the sharp end), l interpolated linearly in the probe's quality q = log(1 + sharpness) over
    ``quality_range`` (clipped there). A probe's vector is then made a query (:meth:`query`): divided by
    c = sqrt((1 - l)(1 - weight)) + sqrt(l x weight), so that its inner product with a gallery face is the
    weighted mean of the two cosines, (sqrt((1 - l)(1 - weight)) x the recogniser's + sqrt(l x weight) x the
    companion's) / c: one similarity scale whatever the probe's share (the open-set threshold is one number for
    every quality; with the unit vector, a sharp probe's similarities were 0.71 x a blurred one's). With a fixed
    share c = 1. It takes the autoencoder's crop and embeds the reconstruction (of a probe; a gallery face as it
    is): ``embeds`` is recorded, and this version knows no other.

    With ``sharp`` (:class:`Sharp`) the joined vector has three parts, [recogniser, sharp, companion]: a gallery
    face's shares of its squared length are G = ((1 - w)(1 - u), (1 - w) u, w) (w = ``weight``, u = the sharp
    part's), a probe's p_i = (W_i^2 / G_i) / sum_j W_j^2 / G_j for the cosines' weights it is to have,
    W = ((1 - L)(1 - t), (1 - L) t, L) (L the companion's weight in the mean at the probe's l, as without a sharp
    part: :func:`mean_weights`; t the sharp part's share), and a query is the joined vector divided by
    sum_i sqrt(G_i) |x_i|, so that its inner product with a gallery face is sum_i W_i cos_i. The two-part form is
    the same rule with G = (1 - w, w). With the sharp part's ``cross`` b > 0 the query then moves b of its
    recogniser part into its sharp part (scaled by sqrt(G_1 / G_2)), so the recogniser's term is
    W_1 ((1 - b) S(p).S(g) + b S(p).T(g)); :meth:`path_weights` and :meth:`pooled_directions` undo that move first
    (:meth:`crossed`)."""

    net: torch.nn.Module
    weight: float  # the gallery side's l (and the probe's without probe_weight), 0 < weight < 1
    embeds: str = "reconstruction"
    mirror: bool = True
    source: str = ""
    probe_weight: tuple[float, float] | None = None  # a probe's l at the blurred and at the sharp end of the range
    quality_range: tuple[float, float] | None = None  # the q over which probe_weight is interpolated
    sharp: Sharp | None = None  # a third part for sharp probes, between the recogniser's and the companion's

    def describe(self) -> dict:
        out = {"architecture": recogniser_architecture(self.net), "source": self.source, "embeds": self.embeds,
               "mirror": bool(self.mirror), "weight": float(self.weight), "config": self.net.config.as_dict()}
        if self.probe_weight is not None:
            out |= {"probe_weight": [float(v) for v in self.probe_weight],
                    "quality_range": [float(v) for v in self.quality_range]}
        if self.sharp is not None:
            out["sharp"] = self.sharp.describe()
        return out

    @property
    def gallery_shares(self) -> tuple[float, ...]:
        """G: each part's share of a gallery face's squared length, in the joined vector's order."""
        w = self.weight
        if self.sharp is None:
            return (1.0 - w, w)
        u = self.sharp.weight
        return ((1.0 - w) * (1.0 - u), (1.0 - w) * u, w)

    def parts(self, joined: np.ndarray) -> list[np.ndarray]:
        """The joined vectors (N, D) cut into their parts (recogniser, [sharp,] companion)."""
        d = int(self.net.config.embed_dim)
        if self.sharp is None:
            return [joined[:, :-d], joined[:, -d:]]
        ds = int(self.sharp.net.config.embed_dim)
        return [joined[:, :-d - ds], joined[:, -d - ds:-d], joined[:, -d:]]

    def cosine_weights(self, sharpness) -> np.ndarray:
        """W (N, parts): each probe's weights of the parts' cosines in its similarity (summing to 1)."""
        w_main, w_comp = mean_weights(self.probe_weights(sharpness), self.weight)
        if self.sharp is None:
            return np.stack([w_main, w_comp], axis=1)
        t = self.sharp.probe_shares(sharpness)
        return np.stack([w_main * (1.0 - t), w_main * t, w_comp], axis=1)

    def joined(self, main: np.ndarray, companion: np.ndarray, sharpness=None) -> np.ndarray:
        """Unit joined vectors of the parts' unit embeddings (``main``: the recogniser's, then the sharp part's
        where there is one, side by side; ``companion``): a gallery face's (``sharpness`` None) of shares G, a
        probe's of shares p (see the class); not yet a query."""
        main = np.asarray(main, np.float64)
        units = self.parts(np.concatenate([main, np.asarray(companion, np.float64)], axis=1))
        if sharpness is None:
            shares = np.tile(np.asarray(self.gallery_shares), (len(main), 1))
        elif self.sharp is None:  # the two-part form as it always was: l itself
            share = self.probe_weights(sharpness)
            shares = np.stack([1.0 - share, share], axis=1)
        else:
            wanted = self.cosine_weights(sharpness) ** 2 / np.asarray(self.gallery_shares)
            shares = wanted / wanted.sum(1, keepdims=True)
        return np.concatenate([np.sqrt(shares[:, [i]]) * u for i, u in enumerate(units)], axis=1).astype(np.float32)

    def crossed(self, queries: np.ndarray, back: bool = False) -> np.ndarray:
        """Queries (N, D) with b = the sharp part's ``cross`` of the recogniser part x moved into the sharp part:
        ((1 - b) x, y + b sqrt(G_1 / G_2) x, z); ``back``: that move undone. Unchanged without a cross share."""
        q = np.array(np.atleast_2d(queries), np.float64)
        if self.sharp is None or not self.sharp.cross:
            return q
        b, (g1, g2, _) = self.sharp.cross, self.gallery_shares
        main, sharp, _ = self.parts(q)  # views of q
        if main.shape[1] != sharp.shape[1]:
            raise ValueError(f"a cross share needs the recogniser's and the sharp part's embeddings of one length, "
                             f"not {main.shape[1]} and {sharp.shape[1]}")
        x = main / (1.0 - b) if back else main.copy()
        sharp += (-1.0 if back else 1.0) * b * np.sqrt(g1 / g2) * x
        main[:] = x if back else (1.0 - b) * x
        return q

    def path_weights(self, queries: np.ndarray) -> np.ndarray:
        """The weights (N, parts) of the parts' cosines in the similarities of probe queries (:meth:`query`'s
        form, a pooled template's too): what each recogniser contributed to a score (with a cross share, the
        recogniser's weight is its whole term's, both gallery parts it is compared with)."""
        parts = self.parts(self.crossed(queries, back=True))
        terms = np.stack([np.sqrt(g) * np.linalg.norm(x, axis=1) for g, x in zip(self.gallery_shares, parts,
                                                                                 strict=True)], axis=1)
        return terms / terms.sum(1, keepdims=True)

    def probe_weights(self, sharpness) -> np.ndarray:
        """Each probe's l from its sharpness (the variance of the Laplacian of its autoencoder crop)."""
        sharpness = np.atleast_1d(np.asarray(sharpness, np.float64))
        if self.probe_weight is None:
            return np.full(sharpness.shape, self.weight)
        return probe_share(sharpness, self.probe_weight, self.quality_range)

    def query(self, joined: np.ndarray) -> np.ndarray:
        """Probe vectors (N, D) of the joined form [a, b] (``a`` in the recogniser's space, ``b`` the companion's
        last ``embed_dim`` values: a probe's joined unit vector, or a template pooled from several) divided by
        sqrt(1 - weight) |a| + sqrt(weight) |b|: the inner product with a gallery face's joined vector is then the
        mean of the recogniser's and the companion's cosines weighted by those two terms. With a sharp part, the
        sum over the three parts of sqrt(G_i) |x_i| (see the class), and then, with a cross share, its recogniser
        part moved as :meth:`crossed` says."""
        joined = np.atleast_2d(np.asarray(joined, np.float64))
        scale = sum(np.sqrt(g) * np.linalg.norm(x, axis=1)
                    for g, x in zip(self.gallery_shares, self.parts(joined), strict=True))
        if not np.all(np.isfinite(scale) & (scale > 1e-6)):
            raise ValueError("a probe query needs a finite, non-zero joined vector")
        return self.crossed(joined / scale[:, None]).astype(np.float32)

    def pooled_directions(self, queries: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Probe queries (N, D) (:meth:`query`'s form) as the unit joined vectors that a template pools: each
        frame's [sqrt(1 - l) main, sqrt(l) companion] with its share l times ``scale`` (the clip calibration's
        ``companion_share``; 1: the frame's own share, the query's direction as it is). The share and the two unit
        embeddings are read back from the joined vector (l is its companion half's squared length)."""
        q = self.crossed(queries, back=True)
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms) & (norms > 1e-6)):
            raise ValueError("pooling needs finite, non-zero probe queries")
        unit = q / norms
        if scale == 1.0:
            return unit
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"a pooled companion share scale lies in [0, 1], not {scale!r}")
        d = int(self.net.config.embed_dim)
        a, b = unit[:, :-d], unit[:, -d:]  # a: the recogniser side (with a sharp part, both its parts)
        la, lb = np.linalg.norm(a, axis=1, keepdims=True), np.linalg.norm(b, axis=1, keepdims=True)
        share = scale * lb**2
        main = np.divide(a, la, out=np.zeros_like(a), where=la > 0)  # the sharp part keeps its share of this side
        comp = np.divide(b, lb, out=np.zeros_like(b), where=lb > 0)
        return np.concatenate([np.sqrt(1.0 - share) * main, np.sqrt(share) * comp], axis=1)

    @classmethod
    def from_spec(cls, net: torch.nn.Module, spec: dict, sharp: torch.nn.Module | None = None) -> Companion:
        cls.check(spec)
        pw, qr = spec.get("probe_weight"), spec.get("quality_range")
        return cls(net, float(spec["weight"]), spec.get("embeds", "reconstruction"), spec.get("mirror", True),
                   spec.get("source", ""), None if pw is None else (float(pw[0]), float(pw[1])),
                   None if qr is None else (float(qr[0]), float(qr[1])),
                   None if sharp is None else Sharp.from_spec(sharp, spec["sharp"]))

    @classmethod
    def check(cls, spec: dict) -> None:
        """Raises ForensicFaceError for a companion entry this version cannot use."""
        w = spec.get("weight")
        if not isinstance(w, int | float) or not 0.0 < float(w) < 1.0:
            raise ForensicFaceError(f"the bundle's companion weight must be a number between 0 and 1, not {w!r}")
        if spec.get("embeds", "reconstruction") != "reconstruction" or not isinstance(spec.get("mirror", True), bool):
            raise ForensicFaceError("the bundle's companion must embed the reconstruction and say whether it mirrors "
                                    "(true or false); this version knows no other companion")
        if spec.get("sharp") is not None:
            Sharp.check(spec["sharp"])
        pw, qr = spec.get("probe_weight"), spec.get("quality_range")
        if pw is None and qr is None:
            return
        ok = (isinstance(pw, list | tuple) and len(pw) == 2 and all(isinstance(v, int | float) and 0 <= v < 1
                                                                      for v in pw)
              and isinstance(qr, list | tuple) and len(qr) == 2 and all(isinstance(v, int | float) for v in qr)
              and qr[0] < qr[1])
        if not ok:
            raise ForensicFaceError(f"the bundle's companion probe_weight {pw!r} and quality_range {qr!r} must be two "
                                    "weights in [0, 1) and a range low < high")


def calibration_digest(calibration: dict | None) -> str | None:
    """SHA-256 of the calibration as stored (canonical JSON), or None without one."""
    if not calibration:
        return None
    return hashlib.sha256(json.dumps(calibration, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_bundle(folder: Path, ae: FusionAutoencoder, rec: torch.nn.Module, calibration: MatchCalibration | None,
                record: dict[str, Any], source: str = "forensic-face train", embeds: str = "reconstruction",
                mirror: bool = True, companion: Companion | None = None) -> dict:
    """Write ``models.pt`` (float16 tensors) and ``models.json``; returns the metadata written. ``source``
    says where the recogniser's weights came from (recorded beside its architecture), ``embeds`` what it embeds
    (:data:`EMBEDS`), ``mirror`` whether a face's embedding is averaged with its mirror image's.

    The version is ``ff-<date>-<8 hex>``: the weights' digest or, where what the engine does with them is not
    the default (no mirror averaging, a companion and its weights), a digest of the weights' digest and those
    choices, since the same weights then give other embeddings (a gallery's embeddings are kept per version).
    ``companion``: a second recogniser joined to the first (its tensors are stored as ``comp.*``)."""
    architecture = recogniser_architecture(rec)  # before anything is written
    joined = companion.describe() if companion is not None else None
    if joined is not None:
        Companion.check(joined)
    if embeds not in EMBEDS:
        raise ForensicFaceError(f"embeds must be one of {', '.join(EMBEDS)}, not {embeds!r}")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"ae.{k}": v.detach().cpu() for k, v in ae.state_dict().items()}
    tensors |= {f"rec.{k}": v.detach().cpu() for k, v in rec.state_dict().items()}
    if companion is not None:
        tensors |= {f"comp.{k}": v.detach().cpu() for k, v in companion.net.state_dict().items()}
    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
    if companion is not None and companion.sharp is not None:  # the recogniser's stand in only for its own kind
        same_kind = recogniser_architecture(companion.sharp.net) == architecture
        tensors |= sharp_tensors(companion.sharp.net, tensors if same_kind else {})
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    torch.save(tensors, tmp)
    tmp.replace(folder / WEIGHTS_FILE)
    digest = sha256_file(folder / WEIGHTS_FILE)
    named = embedding_digest(digest, mirror, joined)
    meta = {
        "format": 1,
        "version": f"ff-{record.get('date', 'undated')}-{named[:8]}",
        "weights_sha256": digest,
        "ae": ae.config.as_dict(),
        "rec": rec.config.as_dict(),
        "recogniser": {"architecture": architecture, "source": source, "embeds": embeds, "mirror": bool(mirror)},
        "calibration": calibration.as_dict() if calibration else None,
        "record": record,
    }
    if joined is not None:
        meta["companion"] = joined
    _write_meta(folder, meta)
    return meta


def save_calibration(folder: Path, calibration: MatchCalibration, record_update: dict[str, Any]) -> dict:
    """Replace the match calibration of an existing bundle (weights and version unchanged; results record
    the calibration's own digest); ``record_update`` is merged into the training record."""
    meta = json.loads((folder / META_FILE).read_text())
    meta["calibration"] = calibration.as_dict()
    meta["record"] = {**meta.get("record", {}), **record_update}
    _write_meta(folder, meta)
    return meta


def save_clip_calibration(folder: Path, calibration: MatchCalibration, info: dict[str, Any],
                          companion_share: float | None = None) -> dict:
    """Add (or replace) the calibration of pooled clip templates (``clip_calibration``) of an existing bundle,
    with how it was fitted (``info``) and, for a joined bundle, the scale on each frame's companion share in a
    pooled template (``companion_share``, :meth:`Companion.pooled_directions`; None: 1, the frame's own);
    weights, version and the single-frame calibration unchanged."""
    meta = json.loads((folder / META_FILE).read_text())
    meta["clip_calibration"] = {**calibration.as_dict(), "fitted_on": info}
    if companion_share is not None:
        meta["clip_calibration"]["companion_share"] = float(companion_share)
    _write_meta(folder, meta)
    return meta


def sharp_tensors(net: torch.nn.Module, stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A sharp part's tensors as stored (``sharp.*``, float16): those that differ from the stored recogniser's
    (``rec.*`` in ``stored``, which the caller gives only for a recogniser of the same architecture, as
    :func:`load_bundle` reads them) by more than :data:`SHARP_TENSOR_TOLERANCE`, or that it lacks."""
    out = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu()
        v = v.half() if v.is_floating_point() else v
        rec = stored.get(f"rec.{k}")
        if rec is None or rec.shape != v.shape or rec.dtype != v.dtype:
            same = False
        elif v.is_floating_point():
            same = float((rec.float() - v.float()).abs().max()) <= SHARP_TENSOR_TOLERANCE
        else:
            same = bool(torch.equal(rec, v))
        if not same:
            out[f"sharp.{k}"] = v
    return out


def _write_meta(folder: Path, meta: dict) -> None:
    """``models.json``, replaced atomically."""
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(folder / META_FILE)


def embedding_digest(weights_sha256: str, mirror: bool = True, companion: dict | None = None) -> str:
    """What names a bundle's embeddings: the weights' digest, or with a choice beyond the weights (no mirror
    averaging; a companion: its description, weights and all) a digest of both (see :func:`save_bundle`)."""
    if mirror and companion is None:
        return weights_sha256
    if companion is None:  # the form of the first bundles without mirror averaging
        return hashlib.sha256(f"{weights_sha256} mirror=false".encode()).hexdigest()
    choices = json.dumps({"mirror": bool(mirror), "companion": companion}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{weights_sha256} {choices}".encode()).hexdigest()


def load_networks(folder: Path, device: torch.device) -> tuple[FusionAutoencoder, torch.nn.Module, dict]:
    """The autoencoder, the recogniser and ``models.json`` of the bundle in ``folder`` (see :func:`load_bundle`)."""
    ae, rec, _, meta = load_bundle(folder, device)
    return ae, rec, meta


def load_bundle(folder: Path, device: torch.device
                ) -> tuple[FusionAutoencoder, torch.nn.Module, Companion | None, dict]:
    """Every network of the bundle in ``folder`` (eval mode, on ``device``) and its ``models.json``; the
    weights file's digest is checked before a tensor is read."""
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise ModelsNotTrainedError(f"no trained models in {folder} (run `forensic-face train`)")
    meta = json.loads(meta_path.read_text())
    digest = sha256_file(weights_path)
    if digest != meta.get("weights_sha256"):
        raise ForensicFaceError(f"{weights_path}: SHA-256 {digest[:12]}… does not match {META_FILE}; "
                                "the weights were altered or belong to another model")
    tensors = torch.load(weights_path, map_location="cpu", weights_only=True)
    ae = FusionAutoencoder(AEConfig(**meta["ae"]))
    rec = build_recogniser(meta)
    ae.load_state_dict({k[3:]: v.float() for k, v in tensors.items() if k.startswith("ae.")})
    rec.load_state_dict(_part(tensors, "rec."))
    companion = None
    spec = meta.get("companion")
    if spec:
        Companion.check(spec)
        net = build_recogniser({"recogniser": spec, "rec": spec.get("config", {})})
        net.load_state_dict(_part(tensors, "comp."))
        sharp = None
        if spec.get("sharp") is not None:  # the recogniser's tensors where its own are not stored
            s = spec["sharp"]
            sharp = build_recogniser({"recogniser": s, "rec": s.get("config", {})})
            own = _part(tensors, "sharp.")
            kind = (meta.get("recogniser") or {}).get("architecture", DEFAULT_ARCHITECTURE)
            base = _part(tensors, "rec.") if s.get("architecture") == kind else {}
            state = {k: own.get(k, base.get(k)) for k in sharp.state_dict()}
            if any(v is None for v in state.values()):
                raise ForensicFaceError(f"{weights_path}: the sharp recogniser's tensors are incomplete "
                                        f"({', '.join(k for k, v in state.items() if v is None)[:200]})")
            sharp.load_state_dict(state)
            sharp = sharp.to(device).eval()
        companion = Companion.from_spec(net.to(device).eval(), spec, sharp)
    return ae.to(device).eval(), rec.to(device).eval(), companion, meta


def _part(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v.float() if v.is_floating_point() else v for k, v in tensors.items()
            if k.startswith(prefix)}


def bundle_available(folder: str | Path | None = None) -> bool:
    """Whether ``folder`` (default: the shipped models) holds a bundle (both files)."""
    f = Path(folder) if folder else models_dir()
    return (f / META_FILE).is_file() and (f / WEIGHTS_FILE).is_file()


def stored_meta(folder: str | Path | None) -> dict | None:
    """``models.json`` of the bundle in ``folder`` (default: the shipped models), without loading the weights;
    None when there is no bundle."""
    f = Path(folder) if folder else models_dir()
    return json.loads((f / META_FILE).read_text()) if bundle_available(f) else None


def bundle_input_size(folder: str | Path | None = None) -> int | None:
    """The side in pixels of the aligned faces the bundle's networks take; None when there is no bundle."""
    meta = stored_meta(folder)
    return None if meta is None else int(meta["ae"]["size"])


def sharp_query_prefix(folder: str | Path | None = None) -> tuple[str, int] | None:
    """(model version, the length of its recogniser side: the recogniser's embedding, and the sharp part's where
    there is one) of a joined bundle: its probes of companion share 0 (sharp ones) are searched with queries that
    are 0 beyond those first values, which a PostgreSQL gallery indexes apart; None for a bundle without a
    companion, or none."""
    meta = stored_meta(folder)
    if not meta or not meta.get("companion"):
        return None
    sharp = meta["companion"].get("sharp")
    return meta["version"], int(meta["rec"]["embed_dim"]) + (int(sharp["config"]["embed_dim"]) if sharp else 0)
