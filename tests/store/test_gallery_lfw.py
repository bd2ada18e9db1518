"""With the shipped models and real LFW images (skipped, with the reason, when either is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensic_face.engine.search import search_gallery
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.gallery import open_gallery

PEOPLE = ["Colin_Powell", "Donald_Rumsfeld", "Gerhard_Schroeder", "Hugo_Chavez", "Jacques_Chirac",
          "Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi", "Serena_Williams", "Tony_Blair"]


@pytest.fixture(scope="module")
def shipped_engine():
    from forensic_face.engine.inference import FaceEngine

    if not FaceEngine.available():
        pytest.skip("no trained models in resources/models (run `forensic-face train`)")
    return FaceEngine(device="cpu")


def test_enrol_real_faces_and_find_a_degraded_probe(shared_data: Path, shipped_engine, detector,
                                                    tmp_path: Path) -> None:
    from forensic_face.engine.probe import ProbePath
    from forensic_face.vision.degrade import degrade
    from forensic_face.vision.frames import load_image

    lfw = shared_data / "lfw"
    gallery_dir = tmp_path / "gallery"
    probes = []
    for name in PEOPLE:
        files = sorted((lfw / name).glob("*.jpg"))
        if len(files) < 4:
            pytest.skip(f"{name} has fewer than 4 images in {lfw}")
        (gallery_dir / name).mkdir(parents=True)
        for f in files[:3]:
            (gallery_dir / name / f.name).write_bytes(f.read_bytes())
        probes.append((name, files[3]))
    with open_gallery(tmp_path / "g.db", mode="create") as g:
        rep = enroll_folder(g, gallery_dir, shipped_engine, detector)
        assert rep.enrolled >= 28 and rep.people == 10
        hits = 0
        probe_path = ProbePath(shipped_engine, detector)
        for k, (name, path) in enumerate(probes):
            probe = probe_path.run(degrade(load_image(path).image, "mild", seed=k))
            res = search_gallery(g, probe.embedding, shipped_engine.calibration, shipped_engine.info.version, 28.0,
                                 top_k=3, probe_sharpness=probe.face.quality.sharpness)
            hits += name in [c.person for c in res.candidates]
        assert hits >= 7, f"the right person was in the top 3 for only {hits} of 10 mild probes"
