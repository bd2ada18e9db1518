"""The gallery database: enrolment (resumable, faceless images listed), vectorised search, model change."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.models.calibration import MatchCalibration
from forensic_face.store.gallery import Gallery, GalleryError

CAL = MatchCalibration(weights=(-8.0, 10.0, 0.0, 0.0), temperature=0.05, n_pairs=0, n_searches=0)


@pytest.fixture(scope="module")
def engine(tiny_engine):
    return tiny_engine


@pytest.fixture(scope="module")
def people_folder(tmp_path_factory: pytest.TempPathFactory, face_rgb: np.ndarray) -> Path:
    root = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(1)
    for p in range(3):
        d = root / f"Person_{p}"
        d.mkdir()
        for i in range(2):
            img = np.clip(face_rgb.astype(np.int16) + rng.integers(-20, 20, 3) + 15 * p, 0, 255).astype(np.uint8)
            img = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(d / f"img_{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    noise = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "Person_2" / "no_face.png"), noise)
    (root / "Person_2" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_enrol_is_resumable_and_lists_faceless_images(tmp_path: Path, engine, detector, people_folder: Path) -> None:
    with Gallery(tmp_path / "g.db") as g:
        rep = g.enroll_folder(people_folder, engine, detector)
        assert rep.people == 3 and rep.images_seen == 8 and rep.enrolled == 6
        assert [Path(p).name for p in rep.no_face] == ["no_face.png"]
        assert [Path(p).name for p in rep.unreadable] == ["broken.jpg"]
        again = g.enroll_folder(people_folder, engine, detector)
        assert again.enrolled == 0 and again.already_enrolled == 8
        info = g.info()
        assert info["people"] == 3 and info["embeddings_by_model"] == {engine.info.version: 6}
        assert {Path(p).name for p in g.no_face_images()} == {"no_face.png", "broken.jpg"}


def test_search_finds_the_enrolled_image_and_says_no_confident_match_otherwise(
        tmp_path: Path, engine, detector, people_folder: Path) -> None:
    from forensic_face.vision.align import AlignSpec, align_face
    from forensic_face.vision.frames import load_image

    with Gallery(tmp_path / "g.db") as g:
        g.enroll_folder(people_folder, engine, detector)
        frame = load_image(people_folder / "Person_1" / "img_0.jpg")
        face = align_face(frame.image, detector.detect_one(frame.image), AlignSpec(size=32)).image
        res = g.search(engine.embed(face[None])[0], CAL, engine.info.version, probe_face_px=120.0, top_k=2)
        assert res.candidates[0].person == "Person_1" and res.candidates[0].similarity == pytest.approx(1, abs=1e-4)
        assert res.candidates[0].image_path.endswith("img_0.jpg")
        assert res.confident and res.verdict == "candidate: Person_1"
        assert len(res.candidates) == 2 and res.people_searched == 3
        assert sum(c.identity_probability for c in res.candidates) <= 1.0 + 1e-6
        stranger = np.zeros(128, np.float32)
        stranger[5] = 1.0
        other = g.search(stranger, CAL, engine.info.version, probe_face_px=120.0)
        assert not other.confident and other.verdict == "no confident match"


def test_vectorised_search_matches_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(500, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    owner = rng.integers(0, 40, 500)
    with Gallery(tmp_path / "g.db") as g:
        for p in np.unique(owner):
            g.add_embeddings(f"P{p:02d}", vecs[owner == p], "v1")
        q = vecs[17] + 0.3 * rng.normal(size=16).astype(np.float32)
        q /= np.linalg.norm(q)
        res = g.search(q, CAL, "v1", 64.0, top_k=5)
        brute = sorted(((float((vecs[owner == p] @ q).max()), f"P{p:02d}") for p in np.unique(owner)), reverse=True)
        assert [c.person for c in res.candidates] == [name for _, name in brute[:5]]
        assert [c.similarity for c in res.candidates] == pytest.approx([s for s, _ in brute[:5]], abs=1e-5)
        # the Euclidean distance between the unit vectors, saved with each candidate
        best = vecs[owner == int(res.candidates[0].person[1:])]
        want = float(np.linalg.norm(best - q, axis=1).min())
        assert res.candidates[0].as_dict()["distance"] == pytest.approx(want, abs=1e-4)
        assert g.search(q, CAL, "other-model", 64.0).candidates == []  # another model's vectors are not mixed in


def test_a_sharp_probe_needs_a_closer_match_than_a_blurred_one(tmp_path: Path) -> None:
    cal = MatchCalibration(weights=(0.33, 5.55, -0.63, 1.06), temperature=0.05, n_pairs=0, n_searches=0,
                           quality_range=(2.45, 7.52))
    vecs = np.eye(4, dtype=np.float32)
    with Gallery(tmp_path / "g.db") as g:
        for k in range(4):
            g.add_embeddings(f"P{k}", vecs[k:k + 1], "v1")
        q = np.array([0.25, 0.0, 0.0, 0.968], np.float32)  # similarity 0.25 to P0, 0.968 to P3
        q /= np.linalg.norm(q)
        blurred = g.search(q, cal, "v1", 100.0, probe_sharpness=20.0)
        sharp = g.search(q, cal, "v1", 100.0, probe_sharpness=1500.0)
        assert blurred.threshold_similarity < sharp.threshold_similarity
        p0 = {c.person: c.match_probability for c in blurred.candidates}["P0"]
        assert p0 > {c.person: c.match_probability for c in sharp.candidates}["P0"]
        assert sharp.as_dict()["probe_sharpness"] == 1500.0
        with pytest.raises(ValueError, match="sharpness"):
            g.search(q, cal, "v1", 100.0)  # a quality-aware calibration will not guess the probe's quality


def test_a_large_gallery_needs_more_than_a_one_to_one_match_for_a_lead(tmp_path: Path) -> None:
    from forensic_face.models.calibration import fit_impostor_tail
    from forensic_face.store.gallery import search_verdict

    rng = np.random.default_rng(7)
    tail = fit_impostor_tail(rng.normal(0.0, 0.2, 200_000))  # strangers' cosines, as measured: sd about 0.2
    cal = MatchCalibration(weights=(-2.27, 9.78, 0.0, 0.0), temperature=0.07, n_pairs=0, n_searches=0,
                           impostor_tail=tail)  # one-to-one: probability 0.5 at cosine 0.232
    vecs = rng.normal(size=(400, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with Gallery(tmp_path / "g.db") as g:
        for k in range(400):
            g.add_embeddings(f"P{k:03d}", vecs[k:k + 1], "v1")

        def probe(cos: float) -> np.ndarray:  # a probe at this cosine to P000, near 0 to the others
            other = rng.normal(size=128).astype(np.float32)
            other -= (other @ vecs[0]) * vecs[0]
            q = cos * vecs[0] + np.sqrt(1 - cos**2) * other / np.linalg.norm(other)
            return q / np.linalg.norm(q)

        middling = g.search(probe(0.45), cal, "v1", 100.0)
        assert middling.candidates[0].person == "P000" and middling.candidates[0].match_probability > 0.5
        assert not middling.confident and middling.below_open_set_threshold  # 0.45 is what strangers reach
        assert middling.open_set_threshold == pytest.approx(cal.open_set_threshold(400))
        assert "which the best of 400 people" in search_verdict(middling.as_dict())
        strong = g.search(probe(0.95), cal, "v1", 100.0)
        assert strong.confident and search_verdict(strong.as_dict()).startswith("Investigative lead: P000")
    # one enrolled person: one comparison, so the threshold is where 1 % of strangers' cosines lie (about 0.47)
    assert cal.open_set_threshold(1) == pytest.approx(np.quantile(rng.normal(0.0, 0.2, 200_000), 0.99), abs=0.01)
    with Gallery(tmp_path / "small.db") as small:
        small.add_embeddings("P000", vecs[:1], "v1")
        assert small.search(probe(0.6), cal, "v1", 100.0).confident
        assert not small.search(probe(0.4), cal, "v1", 100.0).confident


def test_a_probe_that_resembles_everyone_gets_no_lead_but_one_that_stands_out_does(tmp_path: Path) -> None:
    from forensic_face.models.calibration import fit_open_set_table
    from forensic_face.store.gallery import open_set_note, search_verdict

    rng = np.random.default_rng(9)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    common = unit(rng.normal(size=128))  # what all faces share, as real embeddings do
    vecs = unit(0.5 * common + unit(rng.normal(size=(400, 128))))
    # calibration searches of people not enrolled, each resembling the gallery's people more or less
    probes = unit(rng.uniform(0.0, 1.2, (3000, 1)) * common + unit(rng.normal(size=(3000, 128))))
    table = fit_open_set_table(probes @ vecs.T, np.full(3000, -1))
    cal = MatchCalibration(weights=(-2.27, 9.78, 0.0, 0.0), temperature=0.07, n_pairs=0, n_searches=0,
                           open_set=table)  # one-to-one: probability 0.5 at cosine 0.232
    with Gallery(tmp_path / "g.db") as g:
        for k in range(400):
            g.add_embeddings(f"P{k:03d}", vecs[k:k + 1], "v1")
        # a probe that resembles everyone: P000 first at a high cosine, but the next people are close behind
        vague = g.search(unit(1.2 * common + 0.15 * vecs[0]), cal, "v1", 100.0)
        best, nxt = vague.candidates[0], vague.candidates[1]
        assert best.person == "P000" and best.similarity > 0.6 and best.match_probability > 0.95
        assert best.similarity - nxt.similarity < 0.01 and not vague.confident
        stored = vague.as_dict()
        assert stored["lead_score"] < stored["open_set_threshold"]
        assert "stands out too little from the next candidates for a gallery of 400" in search_verdict(stored)
        assert f"this search's is {stored['lead_score']:.3f}" in open_set_note(stored)
        # one that resembles P000 and few others: a lower cosine, yet a lead
        distinct = g.search(unit(vecs[0] + 1.2 * unit(np.random.default_rng(3).normal(size=128))), cal, "v1", 100.0)
        assert distinct.candidates[0].similarity < best.similarity
        assert distinct.confident and search_verdict(distinct.as_dict()).startswith("Investigative lead: P000")
        hostile = {**stored, "fpir": "1%", "lead_score": "high", "open_set_threshold": [0.3],
                   "candidates": [{**stored["candidates"][0], "match_probability": "0.99"}]}
        assert search_verdict(hostile).startswith("No confident match") and "nan" in open_set_note(hostile)
        with pytest.raises(GalleryError, match="false-lead rates from 0.5% to 10.0%, not 50.00%"):
            g.search(vecs[0], cal, "v1", 100.0, fpir=0.5)
        assert g.search(vecs[0], cal, "v1", 100.0, fpir=0.05).as_dict()["fpir"] == 0.05


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "g.db"
    bad.write_text("hello")
    with pytest.raises(GalleryError, match="not an SQLite file"):
        Gallery(bad)


def test_reembed_after_a_model_change(tmp_path: Path, engine, detector, people_folder: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    import torch

    from forensic_face.models.engine import FaceEngine, save_bundle
    from forensic_face.models.nets import AEConfig, FusionAutoencoder, Recogniser, RecogniserConfig

    with Gallery(tmp_path / "g.db") as g:
        g.enroll_folder(people_folder, engine, detector)
        torch.manual_seed(1)
        folder = tmp_path_factory.mktemp("models2")
        save_bundle(folder, FusionAutoencoder(AEConfig(size=32, width=4)),
                    Recogniser(RecogniserConfig(size=32, width=4)), CAL, {"date": "test2"})
        new = FaceEngine(folder, device="cpu")
        assert new.info.version != engine.info.version
        assert g.reembed(new, detector) == 6
        assert g.info()["embeddings_by_model"] == {engine.info.version: 6, new.info.version: 6}


def test_distance_of_saved_candidates_with_and_without_it() -> None:
    from forensic_face.store.gallery import candidate_distance, embedding_distance

    assert [embedding_distance(s) for s in (1.0, 0.0, -1.0)] == pytest.approx([0.0, 2 ** 0.5, 2.0])
    assert embedding_distance(1.0000001) == 0.0  # rounding above 1 is not an error
    assert candidate_distance({"similarity": 0.5, "distance": 0.9}) == 0.9  # as saved
    assert candidate_distance({"similarity": 0.5}) == pytest.approx(1.0)  # results saved before the distance was
    assert np.isnan(candidate_distance({}))
    assert np.isnan(candidate_distance({"distance": "far"})) and np.isnan(candidate_distance({"similarity": [1]}))
