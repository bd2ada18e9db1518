"""models.json names the recogniser's architecture; a bundle that names none (every bundle shipped before it
did) loads as the project's own CNN, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from forensic_face.core.errors import ForensicFaceError
from forensic_face.models.bundle import (
    DEFAULT_ARCHITECTURE,
    META_FILE,
    RECOGNISERS,
    WEIGHTS_FILE,
    load_networks,
    save_bundle,
)
from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig
from forensic_face.models.sface import SFaceNet
from forensic_face.paths import models_dir


def test_the_shipped_bundle_loads_the_network_it_names_with_exactly_its_tensors() -> None:
    """resources/models names its recogniser (a bundle naming none is the project's CNN): load_networks builds that
    network with exactly the stored tensors, which give the same embeddings as a network loaded by hand."""
    folder = models_dir()
    if not (folder / META_FILE).is_file():
        pytest.skip("no trained models in resources/models")
    meta = json.loads((folder / META_FILE).read_text())
    name = (meta.get("recogniser") or {}).get("architecture", DEFAULT_ARCHITECTURE)
    cls, config_cls = RECOGNISERS[name]
    _, rec, _ = load_networks(folder, torch.device("cpu"))
    assert type(rec) is cls and rec.config == config_cls(**meta["rec"])
    tensors = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    by_hand = cls(config_cls(**meta["rec"]))
    by_hand.load_state_dict({k[4:]: v.float() if v.is_floating_point() else v
                             for k, v in tensors.items() if k.startswith("rec.")})
    channels = 3 if name == "sface" else 1
    x = torch.rand(4, channels, rec.config.size, rec.config.size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(rec(x), by_hand.eval()(x))


def _tiny_ae() -> FusionAutoencoder:
    return FusionAutoencoder(AEConfig(size=32, width=4)).eval()


def test_a_bundle_names_its_recogniser_and_one_without_the_name_is_the_cnn(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rec = Recogniser(RecogniserConfig(size=32, width=4)).eval()
    meta = save_bundle(tmp_path, _tiny_ae(), rec, None, {"date": "test"})
    assert meta["recogniser"] == {"architecture": "ff-cnn", "source": "forensic-face train", "embeds": "reconstruction",
                                  "mirror": True}
    x = torch.rand(3, 1, 32, 32)
    _, loaded, _ = load_networks(tmp_path, torch.device("cpu"))
    stored = json.loads((tmp_path / META_FILE).read_text())
    del stored["recogniser"]  # as every bundle written before the field existed
    (tmp_path / META_FILE).write_text(json.dumps(stored))
    _, old_style, _ = load_networks(tmp_path, torch.device("cpu"))
    with torch.no_grad():
        assert type(old_style) is Recogniser and torch.equal(old_style(x), loaded(x))


def test_an_sface_bundle_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SFaceNet()
    with torch.no_grad():  # away from the initial statistics, so the batch norms' buffers are tested too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    meta = save_bundle(tmp_path, _tiny_ae(), net, None, {"date": "test"}, source="OpenCV Zoo SFace 2021dec",
                       embeds="input")
    assert meta["recogniser"] == {"architecture": "sface", "source": "OpenCV Zoo SFace 2021dec", "embeds": "input",
                                  "mirror": True}
    _, loaded, _ = load_networks(tmp_path, torch.device("cpu"))
    assert type(loaded) is SFaceNet
    x = torch.rand(2, 3, 112, 112) * 255
    with torch.no_grad():
        a, b = net(x), loaded(x)
    assert float(torch.nn.functional.cosine_similarity(a, b).min()) > 0.9999  # stored as float16


def test_an_unknown_architecture_is_refused_by_name(tmp_path: Path) -> None:
    save_bundle(tmp_path, _tiny_ae(), Recogniser(RecogniserConfig(size=32, width=4)), None, {"date": "test"})
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["recogniser"]["architecture"] = "resnet-9000"
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ForensicFaceError, match="'resnet-9000' is unknown"):
        load_networks(tmp_path, torch.device("cpu"))


def test_an_unregistered_network_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    save_bundle(tmp_path, _tiny_ae(), Recogniser(RecogniserConfig(size=32, width=4)), None, {"date": "test"})
    before = {f: (tmp_path / f).read_bytes() for f in (META_FILE, WEIGHTS_FILE)}
    with pytest.raises(ForensicFaceError, match="not a registered recogniser"):
        save_bundle(tmp_path, _tiny_ae(), torch.nn.Linear(2, 2), None, {"date": "test"})
    assert {f: (tmp_path / f).read_bytes() for f in (META_FILE, WEIGHTS_FILE)} == before


def test_a_bundle_without_mirror_averaging_embeds_each_face_once_under_a_version_of_its_own(tmp_path: Path) -> None:
    """The same weights with and without mirror averaging give different embeddings: the bundles get different
    versions (a gallery keeps its embeddings per version), the engine says which it does, and without it a face
    and its mirror image no longer embed alike."""
    from forensic_face.engine.inference import FaceEngine

    torch.manual_seed(0)
    rec, ae = Recogniser(RecogniserConfig(size=32, width=4)).eval(), _tiny_ae()
    both, once = tmp_path / "both", tmp_path / "once"
    a = save_bundle(both, ae, rec, None, {"date": "test"})
    b = save_bundle(once, ae, rec, None, {"date": "test"}, mirror=False)
    assert a["weights_sha256"] == b["weights_sha256"] and a["version"] != b["version"]
    assert b["recogniser"]["mirror"] is False
    averaged, single = FaceEngine(both, device="cpu"), FaceEngine(once, device="cpu")
    assert averaged.info.params["recogniser_mirror_averaged"] is True
    assert single.info.params["recogniser_mirror_averaged"] is False
    face = (np.random.default_rng(0).random((1, 32, 32)) * 255).astype(np.uint8)
    mirrored = face[:, :, ::-1]
    assert np.allclose(averaged.embed(face), averaged.embed(mirrored), atol=1e-5)
    assert not np.allclose(single.embed(face), single.embed(mirrored), atol=1e-3)
    with torch.no_grad():
        by_hand = torch.nn.functional.normalize(single.rec(torch.from_numpy(face[:, None] / 255.0).float()), dim=1)
    assert np.allclose(single.embed(face), by_hand.numpy(), atol=1e-4)
    meta = json.loads((once / META_FILE).read_text())
    meta["recogniser"]["mirror"] = "no"
    (once / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ForensicFaceError, match="mirror must be true or false"):
        FaceEngine(once, device="cpu")


def test_a_companion_recogniser_joins_the_similarity_with_its_weights(tmp_path: Path) -> None:
    """A bundle with a companion: gallery faces weigh the two recognisers by the companion's weight, a probe by its
    own share, read from its sharpness between the two ends of the quality range; a gallery face's embedding is a
    unit vector, a probe's a query whose inner product with it is the weighted mean of the two cosines (weights
    sqrt((1 - l)(1 - w)) and sqrt(l w)), so one similarity scale holds for every share, and a template pooled from
    several probes is such a query too; the engine records the weights; a companion that does not take the
    autoencoder's crop, or whose weights are out of range, is refused."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import Companion

    torch.manual_seed(0)
    ae = _tiny_ae()
    main, other = (Recogniser(RecogniserConfig(size=32, width=4)).eval() for _ in range(2))
    comp = Companion(other, 0.5, source="test", probe_weight=(0.4, 0.1), quality_range=(2.0, 6.0))
    meta = save_bundle(tmp_path / "b", ae, main, None, {"date": "test"}, companion=comp)
    # the same tensors joined with other weights embed otherwise: another version
    other_weights = save_bundle(tmp_path / "b2", ae, main, None, {"date": "test"},
                                companion=Companion(other, 0.5, source="test", probe_weight=(0.3, 0.1),
                                                    quality_range=(2.0, 6.0)))
    assert other_weights["weights_sha256"] == meta["weights_sha256"] and other_weights["version"] != meta["version"]
    engine = FaceEngine(tmp_path / "b", device="cpu")
    assert engine.info.params["companion"]["probe_weight"] == [0.4, 0.1] and engine.searches_reconstruction
    faces = (np.random.default_rng(1).random((4, 32, 32)) * 255).astype(np.uint8)
    gallery = engine.embed_searched(faces, faces)
    sharp = np.expm1(np.array([1.0, 2.0, 4.0, 9.0]))  # q below, at, inside and above the range
    probes = engine.embed_searched(faces, faces, sharpness=sharp)
    assert gallery.shape == (4, 2 * main.config.embed_dim)
    assert np.allclose(np.linalg.norm(gallery, axis=1), 1.0, atol=1e-5)
    share = np.array([0.4, 0.4, 0.25, 0.1])[:, None]
    w_main, w_comp = np.sqrt((1 - share) * 0.5), np.sqrt(share * 0.5)
    assert np.allclose(np.linalg.norm(probes, axis=1), 1.0 / (w_main + w_comp)[:, 0], atol=1e-5)
    a, c = engine.embed_parts(faces, faces)
    with torch.no_grad():
        x = torch.from_numpy(faces[:, None] / 255.0).float()
        by_hand = torch.nn.functional.normalize(other(x) + other(torch.flip(x, dims=[3])), dim=1).numpy()
    assert np.allclose(c, by_hand, atol=1e-4) and np.allclose(a, engine.embed(faces), atol=1e-6)
    expected = (w_main * (a @ a.T) + w_comp * (c @ c.T)) / (w_main + w_comp)
    assert np.allclose(probes @ gallery.T, expected, atol=1e-4)
    assert np.allclose(np.diag(probes @ gallery.T), 1.0, atol=1e-4)  # a face against itself: 1 at every share
    # a template pooled from the probes (the clip path): its similarity is again a weighted mean of cosines
    from forensic_face.engine.fusion import fuse

    template = fuse(probes, np.ones(4), engine.pooling)
    d = main.config.embed_dim
    t_main, t_comp = template[:d], template[d:]
    mean_main = (np.sqrt(0.5) * np.linalg.norm(t_main), np.sqrt(0.5) * np.linalg.norm(t_comp))
    by_cos = (mean_main[0] * (a @ (t_main / np.linalg.norm(t_main))) + mean_main[1] * (c @ (t_comp / np.linalg.norm(
        t_comp)))) / sum(mean_main)
    assert np.allclose(gallery @ template, by_cos, atol=1e-4) and np.all(gallery @ template <= 1 + 1e-5)
    with pytest.raises(ValueError, match="unit"):
        fuse(probes, np.ones(4))  # queries are not unit vectors: pooled only with the engine's query
    # a probe whose share is 0 (as sharp as the range's sharp end) is the recogniser's alone: its similarity is the
    # recogniser's cosine, and the companion's network is not run for it
    save_bundle(tmp_path / "z", ae, main, None, {"date": "test"},
                companion=Companion(other, 0.5, source="test", probe_weight=(0.4, 0.0), quality_range=(2.0, 6.0)))
    zero = FaceEngine(tmp_path / "z", device="cpu")
    seen, run = [], zero._comp_run
    zero._comp_run = lambda x: seen.append(len(x)) or run(x)
    two = zero.embed_searched(faces[:2], faces[:2], sharpness=np.expm1(np.array([1.0, 9.0])))
    assert seen == [1, 1]  # one face, then its mirror image: the blurred probe's
    assert np.allclose(two[1] @ zero.embed_searched(faces, faces).T, a[1] @ a.T, atol=1e-4)
    with pytest.raises(ForensicFaceError, match="between 0 and 1"):
        save_bundle(tmp_path / "c", ae, main, None, {"date": "test"}, companion=Companion(other, 1.0))
    with pytest.raises(ForensicFaceError, match="must embed the reconstruction"):
        save_bundle(tmp_path / "f", ae, main, None, {"date": "test"}, companion=Companion(other, 0.5, embeds="input"))
    with pytest.raises(ForensicFaceError, match="probe_weight"):
        save_bundle(tmp_path / "e", ae, main, None, {"date": "test"},
                    companion=Companion(other, 0.5, probe_weight=(0.4, 1.5), quality_range=(2.0, 6.0)))
    small = Recogniser(RecogniserConfig(size=24, width=4)).eval()
    save_bundle(tmp_path / "d", ae, main, None, {"date": "test"}, companion=Companion(small, 0.3))
    with pytest.raises(ForensicFaceError, match="companion recogniser does not take"):
        FaceEngine(tmp_path / "d", device="cpu")


def test_a_clip_calibration_scales_the_companion_share_of_the_frames_it_pools(tmp_path: Path) -> None:
    """The clip calibration's ``companion_share`` (chosen on calibration clips) scales each frame's companion share
    before a template is pooled: each frame enters as its two unit embeddings joined at the scaled share, so a
    template of one frame is that frame at half its share; without it (or at 1) a template pools the queries'
    own directions, as before; the scale is stored with the clip calibration (its digest changes, the version not)."""
    from forensic_face.engine.fusion import fuse
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import Companion, save_clip_calibration
    from forensic_face.models.calibration import MatchCalibration

    torch.manual_seed(0)
    main, other = (Recogniser(RecogniserConfig(size=32, width=4)).eval() for _ in range(2))
    comp = Companion(other, 0.5, source="test", probe_weight=(0.4, 0.1), quality_range=(2.0, 6.0))
    folder = tmp_path / "b"
    meta = save_bundle(folder, _tiny_ae(), main, None, {"date": "test"}, companion=comp)
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    save_clip_calibration(folder, cal, {"pairs": 0})
    own = FaceEngine(folder, device="cpu")
    save_clip_calibration(folder, cal, {"pairs": 0}, companion_share=0.5)
    halved = FaceEngine(folder, device="cpu")
    assert own.pooled_share == 1.0 and halved.pooled_share == 0.5 and halved.info.version == meta["version"]
    assert halved.clip_calibration_sha256 != own.clip_calibration_sha256
    faces = (np.random.default_rng(1).random((3, 32, 32)) * 255).astype(np.uint8)
    sharp = np.expm1(np.array([1.0, 4.0, 9.0]))  # shares 0.4, 0.25, 0.1
    probes = own.embed_searched(faces, faces, sharpness=sharp)
    a, c = own.embed_parts(faces, faces)
    d = main.config.embed_dim
    # the frames' own share: the queries' directions, pooled as before
    assert np.allclose(own.pooling.directions(probes), probes / np.linalg.norm(probes, axis=1, keepdims=True))
    # half the share: each frame's unit embeddings joined at l / 2
    half = np.array([0.2, 0.125, 0.05])[:, None]
    dirs = halved.pooling.directions(probes)
    assert np.allclose(dirs, np.concatenate([np.sqrt(1 - half) * a, np.sqrt(half) * c], axis=1), atol=1e-5)
    assert np.allclose(halved.pooling_at(0.0).directions(probes)[:, d:], 0.0)
    # a template of one frame is that frame's query at half its share: the similarity's companion part is smaller
    one = fuse(probes[:1], np.ones(1), halved.pooling)
    w_main, w_comp = np.sqrt((1 - 0.2) * 0.5), np.sqrt(0.2 * 0.5)
    gallery = own.embed_searched(faces, faces)
    assert np.allclose(gallery @ one, (w_main * (a @ a[0]) + w_comp * (c @ c[0])) / (w_main + w_comp), atol=1e-4)
    assert not np.allclose(fuse(probes, np.ones(3), halved.pooling), fuse(probes, np.ones(3), own.pooling))
    with pytest.raises(ValueError, match="non-zero"):
        own.pooling.directions(np.zeros((1, 2 * d)))


def test_sface_as_published_joins_sharp_probes_beside_the_student_and_shares_its_early_blocks(tmp_path: Path) -> None:
    """A joined bundle with a sharp part (SFace as published beside the tuned student): only the tensors that differ
    from the student's are stored; a gallery face holds the three embeddings, a probe's similarity is the mean of
    the three cosines weighted as its sharpness says (the sharp part's share rising over its quality range, the
    companion's falling over its own), so a blurred probe is searched exactly as without the sharp part and a sharp
    one is 0 beyond the recogniser side (which a PostgreSQL prefix index serves); the weights are what the engine
    reports for a search, pooled templates included; the shared early blocks run once, giving the same embeddings;
    a share or range out of bounds is refused."""
    import copy

    from forensic_face.engine.fusion import fuse
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import Companion, Sharp, mean_weights, sharp_query_prefix

    torch.manual_seed(0)
    student = SFaceNet().eval()
    published = copy.deepcopy(student)
    with torch.no_grad():  # the student was tuned from block 6 on: the published network differs there
        for name, p in published.named_parameters():
            if name.startswith(("blocks.6.", "blocks.12.")):
                p.add_(0.05 * torch.randn_like(p))
    cnn = Recogniser(RecogniserConfig(size=32, width=4)).eval()
    sharp = Sharp(published, 0.5, (4.0, 6.0), source="test")
    comp = Companion(cnn, 0.5, source="test", probe_weight=(0.4, 0.0), quality_range=(2.0, 6.0))
    plain = save_bundle(tmp_path / "two", _tiny_ae(), student, None, {"date": "test"}, embeds="input",
                        companion=comp)
    meta = save_bundle(tmp_path / "three", _tiny_ae(), student, None, {"date": "test"}, embeds="input",
                       companion=Companion(cnn, 0.5, source="test", probe_weight=(0.4, 0.0), quality_range=(2.0, 6.0),
                                           sharp=sharp))
    assert meta["version"] != plain["version"] and meta["companion"]["sharp"]["share"] == 0.5
    stored = torch.load(tmp_path / "three" / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    sharp_keys = {k.split(".", 1)[1] for k in stored if k.startswith("sharp.")}
    assert sharp_keys and all(k.startswith(("blocks.6.", "blocks.12.")) for k in sharp_keys)
    engine, two = FaceEngine(tmp_path / "three", device="cpu"), FaceEngine(tmp_path / "two", device="cpu")
    assert engine.info.params["companion"]["sharp"]["share"] == 0.5 and engine._pair_run is not None
    assert sharp_query_prefix(tmp_path / "three") == (meta["version"], 256)
    rng = np.random.default_rng(1)
    found = (rng.random((3, 112, 112)) * 255).astype(np.uint8)
    recon = (rng.random((3, 32, 32)) * 255).astype(np.uint8)
    q = np.array([1.0, 5.0, 9.0])  # blurred (companion 0.4, sharp 0), between, sharp (companion 0, sharp 0.5)
    gallery = engine.embed_searched(found, recon)
    probes = engine.embed_searched(found, recon, sharpness=np.expm1(q))
    assert gallery.shape == (3, 384) and np.allclose(np.linalg.norm(gallery, axis=1), 1.0, atol=1e-5)
    s, c = two.embed_parts(found, recon)
    with torch.no_grad():  # the published network by hand, as the engine feeds it: grey in three channels, 0..255
        x = torch.from_numpy(found[:, None] / 1.0).float().expand(-1, 3, -1, -1)
        t = torch.nn.functional.normalize(published(x) + published(torch.flip(x, dims=[3])), dim=1).numpy()
    w_main, w_comp = mean_weights(np.array([0.4, 0.1, 0.0]), 0.5)
    share = np.array([0.0, 0.25, 0.5])
    weights = np.stack([w_main * (1 - share), w_main * share, w_comp], axis=1)
    expected = sum(weights[:, [i]] * (e @ e.T) for i, e in enumerate((s, t, c)))
    assert np.allclose(probes @ gallery.T, expected, atol=1e-3)
    paths = engine.path_weights(probes)
    assert np.allclose(np.stack([paths["recogniser"], paths["sharp"], paths["companion"]], axis=1), weights)
    assert engine.path_weights(probes[2]) == {"recogniser": 0.5, "sharp": 0.5, "companion": 0.0}
    # the blurred probe is searched as without the sharp part; the sharp one is 0 beyond the recogniser side
    assert np.allclose(probes[0] @ gallery.T, two.embed_searched(found, recon, sharpness=np.expm1(q))[0]
                       @ two.embed_searched(found, recon).T, atol=1e-5)
    assert not np.any(probes[2, 256:]) and not np.any(probes[0, 128:256])
    # one probe through the shared path, the early blocks run once: the same query
    for k in range(3):
        _, _, one = engine.probe(found[k], recon[k], sharpness=float(np.expm1(q[k])))
        assert np.allclose(one, engine.embed_searched(found[k:k + 1], engine.reconstruct(recon[k:k + 1]),
                                                      sharpness=np.expm1(q[k:k + 1]))[0], atol=1e-5)
    apart = FaceEngine(tmp_path / "three", device="cpu")
    apart._pair_run = None
    assert np.allclose(apart.embed_searched(found, recon, sharpness=np.expm1(q)), probes, atol=1e-5)
    # a pooled template's similarity is again the weighted mean of its parts' cosines, at the weights reported
    template = fuse(probes, np.ones(3), engine.pooling)
    w = engine.path_weights(template)
    parts = (template[:128], template[128:256], template[256:])
    cos = [g @ (p / np.linalg.norm(p)) for g, p in zip((gallery[:, :128], gallery[:, 128:256], gallery[:, 256:]),
                                                       parts, strict=True)]
    norms = np.sqrt(np.array([0.25, 0.25, 0.5]))  # the gallery's parts' lengths
    by_hand = sum(w[n] * cj / nj for n, cj, nj in zip(("recogniser", "sharp", "companion"), cos, norms, strict=True))
    assert np.allclose(gallery @ template, by_hand, atol=1e-4)
    for bad in (Sharp(published, 0.0, (4.0, 6.0)), Sharp(published, 0.5, (6.0, 4.0))):
        with pytest.raises(ForensicFaceError, match="sharp recogniser needs"):
            save_bundle(tmp_path / "bad", _tiny_ae(), student, None, {"date": "test"}, embeds="input",
                        companion=Companion(cnn, 0.5, probe_weight=(0.4, 0.0), quality_range=(2.0, 6.0), sharp=bad))


def test_a_cross_share_compares_the_student_s_probe_with_the_gallery_s_sface_embedding_by_the_query_alone(
        tmp_path: Path) -> None:
    """With the sharp part's cross share b, a probe's similarity takes b of the recogniser's cosine against the
    gallery face's SFace embedding: W1 ((1 - b) S(p).S(g) + b S(p).T(g)) + W2 T(p).T(g) + W3 C(p).C(g). A gallery
    face's embedding is the same numbers as the bundle's without it (only a probe's query differs), the bundle's
    version is another, the weights reported per path are the probe's W, a template pooled from the queries is read
    back and searched with the same form, and a share outside [0, 1) is refused."""
    import copy

    from forensic_face.engine.fusion import fuse
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.models.bundle import Companion, Sharp, mean_weights

    torch.manual_seed(0)
    student = SFaceNet().eval()
    published = copy.deepcopy(student)
    with torch.no_grad():
        for name, p in published.named_parameters():
            if name.startswith("blocks.12."):
                p.add_(0.2 * torch.randn_like(p))
    cnn = Recogniser(RecogniserConfig(size=32, width=4)).eval()

    def bundle(name: str, cross: float) -> dict:
        sharp = Sharp(published, 0.5, (4.0, 6.0), source="test", cross=cross)
        return save_bundle(tmp_path / name, _tiny_ae(), student, None, {"date": "test"}, embeds="input",
                           companion=Companion(cnn, 0.5, source="test", probe_weight=(0.4, 0.0),
                                               quality_range=(2.0, 6.0), sharp=sharp))

    before, after = bundle("before", 0.0), bundle("after", 0.5)
    assert "cross" not in before["companion"]["sharp"] and after["companion"]["sharp"]["cross"] == 0.5
    assert after["version"] != before["version"]
    old, new = FaceEngine(tmp_path / "before", device="cpu"), FaceEngine(tmp_path / "after", device="cpu")
    assert new.info.params["companion"]["sharp"]["cross"] == 0.5
    rng = np.random.default_rng(3)
    found = (rng.random((4, 112, 112)) * 255).astype(np.uint8)
    recon = (rng.random((4, 32, 32)) * 255).astype(np.uint8)
    gallery = new.embed_searched(found, recon)
    assert np.allclose(gallery, old.embed_searched(found, recon), atol=1e-6)  # the same stored embeddings
    q = np.array([1.0, 4.5, 5.0, 9.0])  # blurred (no sharp part), two between, sharp (no companion)
    probes = new.embed_searched(found, recon, sharpness=np.expm1(q))
    s, t, c = (g / np.linalg.norm(g, axis=1, keepdims=True)  # each part's unit embeddings of the gallery faces
               for g in (gallery[:, :128], gallery[:, 128:256], gallery[:, 256:]))
    w_main, w_comp = mean_weights(np.array([0.4, 0.15, 0.1, 0.0]), 0.5)  # the companion's l, falling over 2..6
    share = np.array([0.0, 0.125, 0.25, 0.5])  # the sharp part's t, rising over 4..6
    weights = np.stack([w_main * (1 - share), w_main * share, w_comp], axis=1)
    first = 0.5 * (s @ s.T) + 0.5 * (s @ t.T)  # rows: probes (the same faces), columns: gallery faces
    expected = weights[:, [0]] * first + weights[:, [1]] * (t @ t.T) + weights[:, [2]] * (c @ c.T)
    assert np.allclose(probes @ gallery.T, expected, atol=1e-3)
    assert not np.allclose(probes @ gallery.T, old.embed_searched(found, recon, sharpness=np.expm1(q)) @ gallery.T,
                           atol=1e-3)
    assert np.any(probes[0, 128:256])  # the blurred probe reaches the gallery's SFace part through the cross share
    paths = new.path_weights(probes)
    assert np.allclose(np.stack([paths["recogniser"], paths["sharp"], paths["companion"]], axis=1), weights,
                       atol=1e-6)
    # a one-frame template is that frame's query; a pooled one is searched with the same form
    assert np.allclose(fuse(probes[1:2], np.ones(1), new.pooling), probes[1], atol=1e-5)
    both = fuse(probes[1:3], np.ones(2), new.pooling)
    plain = fuse(old.embed_searched(found, recon, sharpness=np.expm1(q))[1:3], np.ones(2), old.pooling)
    assert np.allclose(new.companion.crossed(both, back=True)[0], plain, atol=1e-5)
    for bad in (1.0, -0.1):
        with pytest.raises(ForensicFaceError, match="cross share"):
            bundle("bad", bad)
