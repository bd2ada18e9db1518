"""analyze_clip: a person followed through a real encoded clip (with its own sound track), the best frames of the
track pooled, searched with the pooled calibration, and every frame used recorded in the case and its report."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensic_face.core.errors import ForensicFaceError, NoFaceFoundError
from forensic_face.services.analysis import ClipRequest, analyze_clip, find_tracks
from forensic_face.services.enrolment import enroll_folder
from forensic_face.store.case import Case
from forensic_face.store.gallery import open_gallery


def _scene_frames(face_rgb: np.ndarray, n: int, with_face: bool = True) -> list[np.ndarray]:
    """``n`` 320x240 frames: the face (about 80 px wide) moving right across a grey scene, a little noise each."""
    face = cv2.resize(face_rgb[30:300, 130:380], (100, 108), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        img = np.full((240, 320, 3), 100, np.uint8)
        if with_face:
            x = 40 + 4 * i
            img[60:168, x:x + 100] = face
        noise = rng.normal(0, 3, img.shape)
        frames.append(np.clip(img + noise, 0, 255).astype(np.uint8))
    return frames


def two_people(n: int) -> list[np.ndarray]:
    """``n`` 320x240 frames at 10 frames/s: the astronaut walking right on the left from the first frame, the
    cameraman coming in on the right at frame 4 and walking left (:mod:`forensic_face.vision.synthclip`)."""
    from forensic_face.vision.synthclip import Shot, Walk, generate_clip

    walks = (Walk("astronaut", (80, 110), (120, 110), 56), Walk("cameraman", (250, 130), (210, 130), 48, first=4))
    return [f.image for f, _ in generate_clip([Shot("coffee", n, walks)], size=(320, 240), fps=10)]


@pytest.fixture()
def clip_models(tiny_clip_models: Path):
    from forensic_face.engine.inference import FaceEngine

    return FaceEngine(tiny_clip_models, device="cpu")


@pytest.fixture(params=["cnn", "sface", "joined", "sharp"])
def each_kind_of_clip_models(request, tiny_clip_models: Path, tiny_sface_clip_models: Path,
                             tiny_joined_clip_models: Path, tiny_sharp_clip_models: Path):
    """A bundle whose recogniser embeds the reconstruction (the project's CNN), one whose recogniser embeds the
    face as found in its own crop, one that joins the two, and one that joins SFace as published to them for sharp
    probes (as the shipped bundle does)."""
    from forensic_face.engine.inference import FaceEngine

    folder = {"cnn": tiny_clip_models, "sface": tiny_sface_clip_models, "joined": tiny_joined_clip_models,
              "sharp": tiny_sharp_clip_models}
    return FaceEngine(folder[request.param], device="cpu")


@pytest.fixture()
def talking_clip(tmp_path: Path, face_rgb: np.ndarray, write_clip) -> Path:
    from forensic_face.audio.synth import synth_speech

    voice = synth_speech(3.0, 16000, seed=4).astype(np.float32)
    return write_clip(tmp_path / "cam2.mp4", "mp4", "h264", _scene_frames(face_rgb, 30), fps=10, audio=voice,
                      acodec="aac", rate=16000)


def test_a_clip_is_followed_pooled_searched_and_recorded(tmp_path: Path, talking_clip: Path, each_kind_of_clip_models,
                                                         detector, face_rgb: np.ndarray) -> None:
    from forensic_face.reports.content import collect

    clip_models = each_kind_of_clip_models
    from forensic_face.vision.yunet import YuNetDetector

    root = tmp_path / "people"
    (root / "Eileen_Collins").mkdir(parents=True)
    cv2.imwrite(str(root / "Eileen_Collins" / "a.jpg"), cv2.cvtColor(face_rgb, cv2.COLOR_RGB2BGR))
    gallery = open_gallery(tmp_path / "g.db", mode="create")
    enroll_folder(gallery, root, clip_models, detector)
    case = Case.create(tmp_path / "case", "C-9", "Analyst")
    case.add_evidence([talking_clip])
    before = {e.name: e.sha256 for e in case.evidence}

    res = analyze_clip(case, clip_models, detector, YuNetDetector(), gallery, request=ClipRequest(pool_frames=8))
    clip = res.clip
    assert clip["calibration"] == "pooled templates" and clip["tracks_found"] == 1
    # the join's pooled frames take the clip calibration's scale on their companion share, and the record says so
    assert ("share of the second recogniser × 0.5" in clip["pooling"]) == (clip_models.companion is not None)
    frames = clip["frames"]
    assert len(frames) == 8 and abs(sum(f["weight"] for f in frames) - 1) < 1e-3
    times = [f["time_s"] for f in frames]
    assert times == sorted(times) and all(0 <= t < 3.0 for t in times)
    assert all(abs(t * 10 - round(t * 10)) < 1e-6 for t in times)  # the container's times: 10 frames/s
    assert res.audio is not None and res.audio["own_track"] and len(res.audio["timestamps_s"]) == 8
    assert res.search["candidates"][0]["person"] == "Eileen_Collins"

    saved = json.loads((case.root / "results" / res.analysis_id / f"{res.analysis_id}.json").read_text())
    assert saved["clip"]["frames"] == frames and saved["clip"]["calibration_sha256"] == \
        clip_models.clip_calibration_sha256
    strip = cv2.imread(str(case.root / saved["images"]["track_strip"]), cv2.IMREAD_GRAYSCALE)
    assert strip.shape[1] == 8 * 96 + 7 * 4  # eight faces side by side
    entry = [e for e in case.read_log() if e["action"] == "analysis"][-1]
    assert entry["details"]["audio"]["evidence"] == res.frame_evidence  # its own sound, logged as such
    view = collect(case).analyses[0]
    assert view.record.clip is not None and len(view.record.clip.frames) == 8
    # the record names a companion where one was joined, with its weight
    assert ("weight 0.3" in view.record.engine.companion) == (clip_models.companion is not None)
    # and says which recognisers made the similarities, by how much (the pooled template's weights)
    paths = view.record.search.paths
    names = ({"recogniser", "sharp", "companion"} if clip_models.sharp is not None else
             {"recogniser", "companion"} if clip_models.companion is not None else None)
    assert (set(paths) if paths else None) == names
    if paths:
        assert abs(sum(paths.values()) - 1) < 1e-3 and res.search["paths"] == paths
    if clip_models.sharp is not None and shutil.which("pdftotext"):  # and the report prints them
        from forensic_face.reports.pdf import write_report

        write_report(case, tmp_path / "report.pdf")
        text = " ".join(subprocess.run(["pdftotext", str(tmp_path / "report.pdf"), "-"], check=True,
                                       capture_output=True, text=True).stdout.split())
        assert "weighted mean of several recognisers' cosines" in text and "SFace as published" in text
    assert view.record.clip.calibration_sha256 == clip_models.clip_calibration_sha256
    assert view.images["track_strip"] is not None and not view.problems
    assert {e.name: e.sha256 for e in case.evidence} == before and Case.open(case.root).verify().ok

    again = analyze_clip(case, clip_models, detector, YuNetDetector(), gallery, request=ClipRequest(pool_frames=8))
    assert again.clip["frames"] == frames  # re-run: the same frames, weights and figures
    assert again.search["candidates"][0]["similarity"] == res.search["candidates"][0]["similarity"]


def test_a_clip_without_a_face_is_refused_and_logged(tmp_path: Path, face_rgb: np.ndarray, write_clip, clip_models,
                                                     detector) -> None:
    from forensic_face.vision.yunet import YuNetDetector

    empty = write_clip(tmp_path / "empty.mkv", "matroska", "h264", _scene_frames(face_rgb, 12, with_face=False),
                       fps=10)
    case = Case.create(tmp_path / "case", "C-10", "Analyst")
    case.add_evidence([empty])
    with pytest.raises(NoFaceFoundError, match="no face was found"):
        analyze_clip(case, clip_models, detector, YuNetDetector())
    assert [e["action"] for e in case.read_log()][-1] == "analysis.failed"


def test_models_without_a_pooled_calibration_are_refused_before_any_work(tmp_path: Path, talking_clip: Path,
                                                                         tiny_engine, detector) -> None:
    from forensic_face.vision.yunet import YuNetDetector

    gallery = open_gallery(tmp_path / "g.db", mode="create")
    case = Case.create(tmp_path / "case", "C-11", "Analyst")
    case.add_evidence([talking_clip])
    with pytest.raises(ForensicFaceError, match="never borrowed from single frames"):
        analyze_clip(case, tiny_engine, detector, YuNetDetector(), gallery)


def test_a_clip_cut_short_is_followed_up_to_the_damage_and_says_so(tmp_path: Path, face_rgb: np.ndarray, write_clip,
                                                                   clip_models, detector) -> None:
    from forensic_face.reports.content import collect
    from forensic_face.vision.yunet import YuNetDetector

    whole = write_clip(tmp_path / "whole.mkv", "matroska", "libx264", _scene_frames(face_rgb, 40), fps=10, gop=5)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    case = Case.create(tmp_path / "case", "C-12", "Analyst")
    case.add_evidence([cut])
    res = analyze_clip(case, clip_models, detector, YuNetDetector(), request=ClipRequest(pool_frames=40))
    warnings = res.clip["warnings"]
    assert "truncated" in warnings[0] and "frames before it were followed" in warnings[0]
    assert warnings[1].startswith("analysed without audio: the clip's own sound track cannot be used")  # none
    times = [f["time_s"] for f in res.clip["frames"]]
    assert 0 < len(times) < 40 and max(times) < 4.0
    assert collect(case).analyses[0].record.clip.warnings == tuple(warnings)


def test_the_people_of_a_clip_are_found_without_analysis_and_the_one_chosen_is_followed(
        tmp_path: Path, write_clip, clip_models, detector) -> None:
    from forensic_face.vision.yunet import YuNetDetector

    clip = write_clip(tmp_path / "two.mkv", "matroska", "h264", two_people(30), fps=10)
    case = Case.create(tmp_path / "case", "C-13", "Analyst")
    case.add_evidence([clip])
    logged = len(case.read_log())
    found = find_tracks(case, YuNetDetector())
    assert found.evidence == "two.mkv" and found.summary == "2 face track(s) in 30 frames (1 shot)"
    first, second = found.tracks
    assert (first.track_id, first.first_frame, second.track_id, second.first_frame) == (1, 0, 2, 4)
    assert (second.start_s, second.end_s, second.faces, first.faces) == (0.4, 2.9, 26, 30)
    assert second.thumbnail.ndim == 3 and not second.seeded
    assert [tid for tid, _ in found.boxes_at(2)] == [1] and [tid for tid, _ in found.boxes_at(10)] == [1, 2]
    assert second.box_at(10)[0] > 160 > first.box_at(10)[2]  # the cameraman on the right, the astronaut left
    assert len(case.read_log()) == logged  # nothing analysed, nothing written

    res = analyze_clip(case, clip_models, detector, YuNetDetector(), request=replace(found.request, track=2,
                                                                                      pool_frames=6))
    assert res.clip["track"] == "2" and res.clip["tracks_found"] == 2
    assert len(res.clip["frames"]) == 6
    for f in res.clip["frames"]:  # the frames pooled are the cameraman's, as the tracking listed them
        assert f["box"] == pytest.approx(second.box_at(f["index"]), abs=0.01)
    heaviest = analyze_clip(case, clip_models, detector, YuNetDetector(), request=replace(found.request,
                                                                                          pool_frames=6))
    assert heaviest.clip["track"] == "1"  # none named: the track that weighs most

    later = find_tracks(case, YuNetDetector(), request=ClipRequest(start_s=1.0, end_s=2.0))
    assert [(t.track_id, t.first_frame, t.last_frame) for t in later.tracks] == [(1, 10, 19), (2, 10, 19)]
    assert later.tracks[1].box_at(15) == second.box_at(15)  # frames keep their places in the clip


def test_the_command_line_lists_the_people_of_a_clip_without_analysing(tmp_path: Path, write_clip, capsys) -> None:
    """`analyze --clip --list-tracks` prints the tracks the GUI lists (same tracking), writes nothing, and refuses
    without --clip."""
    from forensic_face.cli import main

    clip = write_clip(tmp_path / "two.mkv", "matroska", "h264", two_people(30), fps=10)
    case = Case.create(tmp_path / "case", "C-14", "Analyst")
    case.add_evidence([clip])
    logged = len(case.read_log())
    assert main(["analyze", str(case.root), "--clip", "--list-tracks", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["summary"] == "2 face track(s) in 30 frames (1 shot)"
    assert [(t["track"], t["first_frame"], t["faces"]) for t in listed["tracks"]] == [(1, 0, 30), (2, 4, 26)]
    assert main(["analyze", str(case.root), "--clip", "--list-tracks", "--from", "1", "--to", "2"]) == 0
    out = capsys.readouterr().out
    assert "track 2: 1.00-1.90 s, frames 10-19" in out and "nothing was analysed" in out
    assert len(Case.open(case.root).read_log()) == logged
    assert main(["analyze", str(case.root), "--list-tracks"]) != 0
    assert "add --clip" in capsys.readouterr().err

