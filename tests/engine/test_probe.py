"""The one probe path (forensic_face.engine.probe): its steps, and that every caller goes through it and
gets what a direct call of it gives for the same frame (the case analysis, the command line's search,
enrolment, the demo)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.engine.probe import NO_MODEL_SIZE, Probe, ProbePath, face_region, find_face, probe_size
from forensic_face.engine.search import EmbeddingIndex
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.gallery import open_gallery
from forensic_face.vision.align import AlignSpec, align_face
from forensic_face.vision.frames import load_image, to_grey
from forensic_face.vision.quality import assess


@pytest.fixture()
def path(tiny_engine, detector) -> ProbePath:
    return ProbePath(tiny_engine, detector)


@pytest.fixture()
def searched(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The embeddings every gallery search of the test compared with the gallery's."""
    seen: list[np.ndarray] = []
    scores = EmbeddingIndex.scores

    def spy(self, embedding, *args, **kwargs):
        seen.append(np.array(embedding))
        return scores(self, embedding, *args, **kwargs)

    monkeypatch.setattr(EmbeddingIndex, "scores", spy)
    return seen


@pytest.fixture()
def gallery_db(tmp_path: Path, tiny_engine, detector, face_rgb: np.ndarray) -> Path:
    root = tmp_path / "people"
    for name, shift in (("Eileen_Collins", 0), ("Someone_Else", 60)):
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / "a.jpg"), cv2.cvtColor(np.roll(face_rgb, shift, axis=1), cv2.COLOR_RGB2BGR))
    with open_gallery(tmp_path / "gallery.db", mode="create") as g:
        enroll_folder(g, root, tiny_engine, detector)
    return tmp_path / "gallery.db"


def test_each_step_at_the_engines_size(path: ProbePath, tiny_engine, frame_640: np.ndarray) -> None:
    probe = path.run(frame_640)
    face = probe.face
    assert path.size == tiny_engine.size == 32 and face.size == 32
    assert face.aligned.image.shape == (32, 32, 3) and face.grey.shape == (32, 32) and face.grey.dtype == np.uint8
    grey_frame = to_grey(frame_640)  # the package's one grey conversion, of the whole frame before any warp
    from_grey = align_face(grey_frame, face.detection, AlignSpec(size=32))
    np.testing.assert_array_equal(face.grey, from_grey.image)
    np.testing.assert_array_equal(face.aligned.matrix, from_grey.matrix)  # the crop shown is the same crop
    region = face_region(grey_frame, face.detection.box)  # the face in the frame, unresampled: its real detail
    assert face.quality == assess(face.grey, face.detection.width, region, face.detection.landmarks)
    assert face.detection.method.startswith("dlib-hog")
    np.testing.assert_array_equal(probe.reconstruction, tiny_engine.reconstruct(face.grey[None])[0])
    np.testing.assert_array_equal(probe.embedding, tiny_engine.embed(probe.reconstruction[None])[0])
    assert probe.embedding.shape == (128,) and abs(float(np.linalg.norm(probe.embedding)) - 1) < 1e-5
    assert not probe.audio_used and probe.audio_effect == {}


def test_audio_and_a_given_box(path: ProbePath, tiny_engine, frame_640: np.ndarray) -> None:
    audio = np.random.default_rng(0).random((1, tiny_engine.audio_dim)).astype(np.float32)
    probe = path.run(frame_640, box=(200, 80, 440, 360), audio=audio)
    assert probe.face.detection.method == "manual" and probe.audio_used
    np.testing.assert_array_equal(probe.reconstruction, tiny_engine.reconstruct(probe.face.grey[None], audio)[0])
    np.testing.assert_array_equal(probe.reconstruction_no_audio, tiny_engine.reconstruct(probe.face.grey[None])[0])
    assert set(probe.audio_effect) == {"mean_abs_difference", "max_abs_difference"}
    alone = path.complete(probe.face, audio[0], without_audio=False)  # a (D,) vector works as well
    assert alone.reconstruction_no_audio is None
    np.testing.assert_array_equal(alone.embedding, probe.embedding)


def test_the_crop_size_is_never_a_default(tiny_models: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        AlignSpec()  # the size must be given: the engine's
    assert probe_size(models=str(tiny_models)) == 32  # read from the bundle, no weights loaded
    assert probe_size(models=str(tmp_path)) == NO_MODEL_SIZE  # no models: only to show the face step


def test_find_face_is_the_face_step_without_an_engine(path: ProbePath, detector, frame_640: np.ndarray) -> None:
    a, b = find_face(frame_640, detector, 32), path.face(frame_640)
    np.testing.assert_array_equal(a.grey, b.grey)
    assert find_face(frame_640, detector, 48).grey.shape == (48, 48)


def test_enrolment_goes_through_the_probe_path(tmp_path: Path, path: ProbePath, tiny_engine, detector,
                                              face_rgb: np.ndarray) -> None:
    """The gallery stores, for each image, the embedding of the probe path's face as it is (not reconstructed),
    and the aligned colour crop as its thumbnail."""
    from forensic_face.services.enrolment import EMBED_CHUNK
    from forensic_face.vision.frames import encode_png

    root = tmp_path / "people"
    images = []
    for name, shift in (("A_Person", 0), ("B_Person", 40)):
        (root / name).mkdir(parents=True)
        images.append(root / name / "x.jpg")
        cv2.imwrite(str(images[-1]), cv2.cvtColor(np.roll(face_rgb, shift, axis=1), cv2.COLOR_RGB2BGR))
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        assert enroll_folder(g, root, tiny_engine, detector).enrolled == 2
        index = g.snapshot(tiny_engine.info.version).index
        faces = [path.face(load_image(image).image) for image in images]
        # in calls of EMBED_CHUNK faces, as enrolment's workers embed them (a batch's size changes the float sums)
        direct = [path.embed_faces([face] * EMBED_CHUNK)[0] for face in faces]
        for image, face, emb in zip(images, faces, direct, strict=True):
            row = index.paths.index(str(image))
            np.testing.assert_array_equal(index.vectors[row], emb)
            assert g.thumbnail(int(index.image_ids[row])) == encode_png(face.aligned.image)


def test_the_engine_turns_colour_crops_grey_by_the_package_conversion(path: ProbePath, tiny_engine,
                                                                       frame_640: np.ndarray) -> None:
    face = path.face(frame_640)
    np.testing.assert_array_equal(tiny_engine.embed(face.aligned.image[None]),
                                  tiny_engine.embed(to_grey(face.aligned.image)[None]))


def test_a_colour_frame_gives_what_its_grey_frame_gives(path: ProbePath, frame_640: np.ndarray) -> None:
    """Training and evaluation warped grey frames; a colour frame is made grey (BT.601, the Y a JPEG stores)
    before any crop is taken, so the analysis of a colour frame is that of its grey form, bit for bit: the same
    crops, quality, reconstruction and searched embedding (only the crop shown keeps the colour)."""
    colour, grey = path.run(frame_640), path.run(to_grey(frame_640))
    assert colour.face.aligned.image.ndim == 3 and grey.face.aligned.image.ndim == 2
    np.testing.assert_array_equal(colour.face.grey, grey.face.grey)
    np.testing.assert_array_equal(colour.face.rec_grey, grey.face.rec_grey)
    assert colour.face.quality.as_dict() == grey.face.quality.as_dict()
    np.testing.assert_array_equal(colour.reconstruction, grey.reconstruction)
    np.testing.assert_array_equal(colour.embedding, grey.embedding)
    # the BT.601 weights, as a JPEG's luma: a grey pixel of (R, G, B) = (200, 100, 50) is 0.299 R + 0.587 G + 0.114 B
    assert to_grey(np.array([[[200, 100, 50]]], np.uint8))[0, 0] == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)


def _analysis_case(tmp_path: Path, frame_640: np.ndarray):
    from forensic_face.store.case import Case

    src = tmp_path / "cam1.jpg"
    cv2.imwrite(str(src), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    case = Case.create(tmp_path / "case", "C-1", "Analyst")
    case.add_evidence([src])
    return case, case.evidence_path(case.evidence[0].name)


def test_the_case_analysis_goes_through_the_probe_path(tmp_path: Path, path: ProbePath, tiny_engine, detector,
                                                       gallery_db: Path, frame_640: np.ndarray,
                                                       searched: list) -> None:
    from forensic_face.services.analysis import analyze_case

    case, evidence = _analysis_case(tmp_path, frame_640)
    with open_gallery(gallery_db) as g:
        res = analyze_case(case, tiny_engine, detector, g, top_k=2)
    direct = path.run(load_image(evidence).image)
    assert len(searched) == 1
    np.testing.assert_array_equal(searched[0], direct.embedding)
    np.testing.assert_array_equal(res.face_image, direct.face.grey)
    np.testing.assert_array_equal(res.reconstruction, direct.reconstruction)
    assert res.quality["sharpness"] == direct.face.quality.as_dict()["sharpness"]


def test_the_command_line_search_goes_through_the_probe_path(tmp_path: Path, path: ProbePath, tiny_models: Path,
                                                            gallery_db: Path, frame_640: np.ndarray,
                                                            searched: list, capsys) -> None:
    from forensic_face.cli import main

    image = tmp_path / "probe.png"
    cv2.imwrite(str(image), cv2.cvtColor(frame_640, cv2.COLOR_RGB2BGR))
    assert main(["gallery", "search", str(gallery_db), str(image), "--models", str(tiny_models), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    direct = path.run(load_image(image).image, without_audio=False)
    np.testing.assert_allclose(searched[0], direct.embedding, atol=1e-6)  # another engine on the same weights
    assert out["probe_sharpness"] == round(direct.face.quality.sharpness, 2)


def test_the_demo_goes_through_the_probe_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, searched: list) -> None:
    """The demo's preview face is the probe path's face step, and the embedding its analysis searched with
    is the one a direct call of the probe path gives for the same frame and audio."""
    from forensic_face.engine import probe as probe_module
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.services.demo import run_demo

    if not FaceEngine.available():
        pytest.skip("the demo's analysis needs the shipped models in resources/models")
    completed: list[tuple[np.ndarray | None, Probe]] = []
    faces: list = []
    complete, find = ProbePath.complete, probe_module.find_face

    def spy_complete(self, face, audio=None, without_audio=True):
        probe = complete(self, face, audio, without_audio)
        completed.append((audio, probe))
        return probe

    def spy_find(*args, **kwargs):
        faces.append(find(*args, **kwargs))
        return faces[-1]

    monkeypatch.setattr(ProbePath, "complete", spy_complete)
    monkeypatch.setattr(probe_module, "find_face", spy_find)
    summary = run_demo(tmp_path / "demo")
    assert len(faces) >= 2 and summary["quality"] == faces[0].quality.as_dict()  # the preview's face step
    assert len(completed) == 1 and len(searched) == 1
    audio, probe = completed[0]
    assert audio is not None
    np.testing.assert_array_equal(searched[0], probe.embedding)
    from forensic_face.store.case import Case
    from forensic_face.vision.detect import FaceDetector

    case = Case.open(summary["case"])
    frame = load_image(case.evidence_path(summary["analysis"]["frame_evidence"])).image
    direct = ProbePath(FaceEngine(), FaceDetector())
    np.testing.assert_array_equal(complete(direct, direct.face(frame), audio).embedding, probe.embedding)


def _sface_bundle(folder: Path, embeds: str = "input", ae_size: int = 32) -> None:
    import torch

    from forensic_face.models.bundle import save_bundle
    from forensic_face.models.calibration import MatchCalibration
    from forensic_face.models.nets import AEConfig, FusionAutoencoder
    from forensic_face.models.sface import SFaceConfig, SFaceNet

    torch.manual_seed(0)
    cal = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)
    save_bundle(folder, FusionAutoencoder(AEConfig(size=ae_size, width=4)), SFaceNet(SFaceConfig()).eval(), cal,
                {"date": "test"}, source="random weights (test)", embeds=embeds)


def test_a_new_backbone_is_its_definition_and_a_registry_line(tmp_path, detector, frame_640: np.ndarray) -> None:
    """SFace (a registered recogniser of another architecture, input and alignment) saved in a bundle runs through
    the one probe path: the engine builds it by name, the probe path aligns the face twice, the autoencoder's way
    (eyes, at its size) and the recogniser's (the five-point template, 112 px), and the embedding searched with is
    what the network gives on its own crop of the face as found; the reconstruction is the autoencoder's."""
    import torch

    from forensic_face.engine.inference import FaceEngine

    _sface_bundle(tmp_path)
    engine = FaceEngine(tmp_path, device="cpu")
    assert (engine.size, engine.alignment, engine.rec_size, engine.rec_alignment) == (32, "eyes", 112, "arcface")
    assert engine.embeds == "input" and engine.info.as_dict()["recogniser"] == "sface"
    probe = ProbePath(engine, detector).run(frame_640)
    assert probe.face.grey.shape == (32, 32) and probe.reconstruction.shape == (32, 32)
    assert probe.face.rec_aligned.method == "five-point" and probe.face.rec_grey.shape == (112, 112)
    assert probe.embedding.shape == (128,) and abs(float(np.linalg.norm(probe.embedding)) - 1) < 1e-5
    x = torch.from_numpy(probe.face.rec_grey.astype(np.float32))[None, None].expand(2, 3, -1, -1).clone()
    x[1] = torch.flip(x[1], dims=[2])  # the engine embeds the face and its mirror image, summed
    with torch.no_grad():
        want = torch.nn.functional.normalize(engine.rec.eval()(x).sum(0, keepdim=True), dim=1)[0].numpy()
    assert float(want @ probe.embedding) > 0.9999


def test_a_recogniser_of_the_face_as_found_is_not_moved_by_the_audio(tmp_path, detector,
                                                                     frame_640: np.ndarray) -> None:
    """The voice goes into the reconstruction shown, never into the embedding searched with, for a recogniser that
    embeds its input; enrolment embeds the same crop, so a frame searched against its own enrolment scores 1."""
    from forensic_face.engine.inference import FaceEngine

    _sface_bundle(tmp_path)
    engine = FaceEngine(tmp_path, device="cpu")
    path = ProbePath(engine, detector)
    face = path.face(frame_640)
    audio = np.random.default_rng(0).random(engine.audio_dim).astype(np.float32)
    with_voice, without = path.complete(face, audio), path.complete(face)
    assert with_voice.audio_used and not without.audio_used
    np.testing.assert_allclose(with_voice.embedding, without.embedding, atol=1e-6)
    assert float(path.embed_faces([face])[0] @ without.embedding) > 0.9999
    many = path.complete_many([face, face], np.stack([audio, audio]))
    np.testing.assert_allclose(many[0].embedding, without.embedding, atol=1e-5)


def test_a_bundle_whose_recogniser_would_embed_a_reconstruction_it_cannot_take_is_refused(tmp_path) -> None:
    from forensic_face.core.errors import ForensicFaceError
    from forensic_face.engine.inference import FaceEngine

    _sface_bundle(tmp_path, embeds="reconstruction")
    with pytest.raises(ForensicFaceError, match="inconsistent"):
        FaceEngine(tmp_path, device="cpu")
