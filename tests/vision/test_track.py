"""Following faces through a clip: two real faces crossing, a hard cut, a stretch without a face, a face too small
for the detector followed from the analyst's box; streaming, cancel and determinism."""

import gc
import weakref

import cv2
import numpy as np
import pytest

from forensic_face.core.errors import CancelledError, InputError
from forensic_face.core.progress import CancelToken, Progress
from forensic_face.engine.fusion import frame_weight
from forensic_face.vision.synthclip import Shot, Walk, crossing_shots, generate_clip, score_tracks
from forensic_face.vision.track import (
    FACE_RECORD,
    FOLLOWED,
    Seed,
    TrackerConfig,
    box_iou,
    iter_track_frames,
    read_ahead,
    track_faces,
)
from forensic_face.vision.yunet import YuNetDetector


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def crossing() -> tuple[list, dict]:
    """200 frames: the cameraman passes in front of the astronaut (frames 0-99), a cut to another scene where she
    walks again (100-149), then no face (150-199)."""
    clip = list(generate_clip(crossing_shots()))
    return [f for f, _ in clip], {f.index: t for f, t in clip}


@pytest.fixture(scope="module")
def tracked(crossing, yunet):
    return track_faces(crossing[0], yunet, weigh=frame_weight)


def test_two_people_crossing_and_a_cut_are_followed_on_the_right_tracks(crossing, tracked):
    frames, truth = crossing
    score = score_tracks(tracked.tracks, truth)
    assert score.accuracy >= 0.98, score
    assert score.false == 0
    # one track per person per shot: the astronaut after the cut is a new track, not the old one continued
    assert set(score.main_tracks) == {("astronaut", 0), ("cameraman", 0), ("astronaut", 1)}
    assert len(tracked.tracks) == 3 and len(set(score.main_tracks.values())) == 3


def test_the_cut_splits_the_tracks_and_the_empty_stretch_ends_them(tracked):
    assert tracked.cuts == (100,)
    by_end = {(t.first_frame, t.last_frame): t for t in tracked.tracks}
    first_shot = [t for t in tracked.tracks if t.first_frame == 0]
    assert len(first_shot) == 2 and all(t.last_frame == 99 and t.end_reason == "cut" for t in first_shot)
    after = by_end[(100, 149)]
    assert after.end_reason == "gap"  # the face left at frame 149; nothing is recorded in the empty stretch
    assert not any(t.records["frame"].max() >= 150 for t in tracked.tracks)
    assert tracked.frames_seen == tracked.frames_detected == 200


def test_every_face_carries_its_quality_weight_and_the_best_crops(tracked, crossing):
    frames = crossing[0]
    for track in tracked.tracks:
        rec = track.records
        assert rec.dtype == FACE_RECORD and np.all(np.diff(rec["frame"]) > 0)
        assert np.all(rec["weight"] >= 0) and np.all(rec["weight"] <= 1)
        assert np.all(np.isfinite(rec["sharpness"])) and np.all(rec["face_px"] > 50)
        assert 0 < len(track.crops) <= tracked.config.best_crops
        weights = [c.weight for c in track.crops]
        assert weights == sorted(weights, reverse=True) and weights[0] == pytest.approx(rec["weight"].max())
        crop = track.crops[0]
        # the crop is the frame's pixels around the face, and its box is the record's box in crop pixels
        i = int(np.flatnonzero(rec["frame"] == crop.frame_index)[0])
        x0, y0 = (int(v) for v in crop.origin)
        h, w = (round(n / crop.scale) for n in crop.image.shape[:2])
        region = cv2.resize(frames[crop.frame_index].image[y0:y0 + h, x0:x0 + w], crop.image.shape[1::-1],
                            interpolation=cv2.INTER_AREA)
        assert crop.scale <= 1 and max(crop.image.shape[:2]) <= tracked.config.crop_max_px
        assert np.corrcoef(region.ravel(), crop.image.ravel())[0, 1] > 0.95  # the same pixels, resampled
        assert crop.detection.box[0] == pytest.approx((rec["box"][i][0] - x0) * crop.scale, abs=1e-3)
    # the cameraman looks to the side: his faces weigh less than the astronaut's frontal ones
    score = score_tracks(tracked.tracks, crossing[1])
    by_id = {t.track_id: t for t in tracked.tracks}
    her, him = by_id[score.main_tracks[("astronaut", 0)]], by_id[score.main_tracks[("cameraman", 0)]]
    assert np.median(her.weights) > np.median(him.weights)
    assert np.nanmedian(np.abs(him.records["turn"])) > 0.3 > np.nanmedian(np.abs(her.records["turn"]))


def test_the_same_clip_gives_the_same_tracks(crossing, yunet, tracked):
    again = track_faces(iter(crossing[0]), yunet, weigh=frame_weight)
    assert len(again.tracks) == len(tracked.tracks)
    for a, b in zip(again.tracks, tracked.tracks, strict=True):
        assert a.records.tobytes() == b.records.tobytes()
        assert [c.frame_index for c in a.crops] == [c.frame_index for c in b.crops]
    assert again.as_dict() == tracked.as_dict()


def test_a_clip_without_a_face_gives_no_track_and_says_so(yunet):
    frames = (f for f, _ in generate_clip([Shot("coffee", 30)]))
    result = track_faces(frames, yunet, weigh=frame_weight)
    assert result.tracks == [] and result.frames_seen == 30
    assert "no face was found in the 30 frames" in result.summary()
    assert result.as_dict()["tracks"] == []


def test_frames_are_not_kept(yunet):
    """The tracker holds no frame: only its records and small copies of the best faces."""
    refs = []

    def frames():
        for frame, _ in generate_clip([Shot("coffee", 40, (Walk("astronaut", (200, 240), (420, 240), 90),))]):
            refs.append(weakref.ref(frame.image))
            yield frame

    result = track_faces(frames(), yunet, weigh=frame_weight)
    gc.collect()
    assert len(refs) == 40 and sum(r() is not None for r in refs) == 0
    assert len(result.tracks) == 1 and len(result.tracks[0].records) == 40
    assert FACE_RECORD.itemsize == 122


def test_a_face_the_detector_misses_is_followed_from_the_analysts_box(yunet):
    shots = [Shot("coffee", 50, (Walk("astronaut", (150, 300), (400, 260), 14),))]  # 14 px: too small for YuNet
    clip = list(generate_clip(shots))
    truth = {f.index: t[0].box for f, t in clip}
    frames = [f for f, _ in clip]
    assert track_faces(frames, yunet, weigh=frame_weight).tracks == []
    result = track_faces(frames, yunet, weigh=frame_weight, seeds=[Seed(3, truth[3])])
    (track,) = result.tracks
    assert track.seeded and track.first_frame == 3 and track.last_frame == 49
    assert track.method_counts() == {"manual": 1, FOLLOWED: 46}
    ious = [box_iou(r["box"], truth[int(r["frame"])]) for r in track.records]
    assert min(ious) > 0.7


def test_a_seed_box_outside_the_frame_is_refused(yunet):
    frames = [f for f, _ in generate_clip([Shot("coffee", 3)])]
    with pytest.raises(InputError, match="outside the 640x480 frame"):
        track_faces(frames, yunet, weigh=frame_weight, seeds=[Seed(1, (600, 400, 700, 500))])
    result = track_faces(frames, yunet, weigh=frame_weight, seeds=[Seed(9, (10, 10, 50, 50))])
    assert "frame 9 was not used" in result.warnings[0]


def test_detecting_every_third_frame_follows_the_faces_between(crossing, yunet):
    frames, truth = crossing
    result = track_faces(frames, yunet, weigh=frame_weight, config=TrackerConfig(detect_every=3))
    assert result.frames_detected == 67
    score = score_tracks(result.tracks, truth)
    assert score.accuracy >= 0.98, score
    assert sum(t.method_counts().get(FOLLOWED, 0) for t in result.tracks) > 150


def test_progress_reports_and_cancel_stops_the_work(crossing, yunet):
    seen = []
    token = CancelToken()

    def report(done, total, message):
        seen.append(done)
        if done >= 20:
            token.cancel()

    with pytest.raises(CancelledError):
        track_faces(crossing[0][:60], yunet, weigh=frame_weight, total_frames=60, progress=Progress(report, token))
    assert seen and max(seen) < 25


def test_a_second_pass_yields_the_tracks_frames_with_their_faces(crossing, tracked):
    frames = crossing[0]
    track = tracked.tracks[-1]  # frames 100-149
    read = []

    def source():
        for f in frames:
            read.append(f.index)
            yield f

    pairs = list(iter_track_frames(source(), track))
    assert [f.index for f, _ in pairs] == track.records["frame"].tolist()
    assert max(read) == track.last_frame + 1  # stopped reading after the track's last frame
    frame, face = pairs[0]
    assert face.detection.box == pytest.approx(tuple(track.records["box"][0]))
    assert face.detection.landmark_kind == "five-point" and face.weight == pytest.approx(track.weights[0])


def test_the_callers_embedding_separates_the_people(crossing, yunet):
    """With a real recogniser (the shipped engine) as ``embed``, the crossing is followed as well."""
    from forensic_face.engine.inference import FaceEngine
    from forensic_face.vision.align import AlignSpec

    if not FaceEngine.available():
        pytest.skip("the shipped model bundle is not installed")
    engine = FaceEngine(device="cpu")
    calls = []

    def embed(crops):
        calls.append(len(crops))
        return engine.embed(np.stack(crops))

    frames, truth = crossing
    result = track_faces(frames[:100], yunet, weigh=frame_weight, embed=embed,
                         embed_spec=AlignSpec(size=engine.rec_size, mode=engine.rec_alignment))
    first_shot = {k: v for k, v in truth.items() if k < 100}
    assert calls and score_tracks(result.tracks, first_shot).accuracy >= 0.98


def test_detection_on_two_workers_gives_the_same_tracks(crossing, yunet, tracked):
    result = track_faces(read_ahead(iter(crossing[0])), yunet, weigh=frame_weight, workers=2)
    assert [t.records.tobytes() for t in result.tracks] == [t.records.tobytes() for t in tracked.tracks]


def test_reading_ahead_keeps_the_order_passes_errors_on_and_stops_the_reader():
    closed = []

    def source(fail_at=None):
        try:
            for frame, _ in generate_clip([Shot("coffee", 12)], size=(64, 48)):
                if frame.index == fail_at:
                    raise InputError(f"frame {fail_at} is corrupt")
                yield frame
        finally:
            closed.append(True)

    assert [f.index for f in read_ahead(source(), depth=2)] == list(range(12))
    with pytest.raises(InputError, match="frame 5 is corrupt"):
        list(read_ahead(source(fail_at=5)))
    reader = read_ahead(source(), depth=2)
    assert next(reader).index == 0
    reader.close()  # the consumer stops early: the reader thread ends and closes its source
    assert closed == [True, True, True]
