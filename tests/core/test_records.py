"""The search records: saved as before, and read back from saved results, old and damaged ones included."""

from __future__ import annotations

import json
import math

from forensic_face.core.records import DEFAULT_FPIR, Candidate, SearchOutcome


def _outcome() -> SearchOutcome:
    cands = [Candidate("Ann", 0.812345, 0.93456, 0.99123, "/g/ann.jpg", 7),
             Candidate("Bob", 0.4, 0.05, 0.61, "/g/bob.jpg", 3)]
    return SearchOutcome(cands, False, 0.23456, 12, 30, "v1", 88.26, 0.0123456, 154.3219, 0.51234, 0.05,
                         0.40012, {"path": "/g/g.db", "content_sha256": "ab" * 32})


def test_a_search_is_saved_as_before() -> None:
    saved = _outcome().as_dict()
    assert list(saved) == ["verdict", "confident", "threshold_similarity", "people_searched", "embeddings_searched",
                           "model_version", "probe_face_px", "probe_sharpness", "open_set_threshold", "fpir",
                           "lead_score", "seconds", "candidates", "gallery"]
    assert (saved["verdict"], saved["threshold_similarity"], saved["probe_face_px"], saved["probe_sharpness"],
            saved["open_set_threshold"], saved["lead_score"], saved["seconds"]) == (
        "no confident match", 0.2346, 88.3, 154.32, 0.5123, 0.4001, 0.01235)
    assert saved["candidates"][0] == {"person": "Ann", "similarity": 0.8123, "distance": 0.6126,
                                      "identity_probability": 0.9346, "match_probability": 0.9912,
                                      "image_path": "/g/ann.jpg", "image_id": 7}
    bare = SearchOutcome([], False, float("nan"), 0, 0, "v1", 80.0).as_dict()
    assert (bare["open_set_threshold"], bare["lead_score"], bare["fpir"], bare["verdict"]) == (
        None, None, DEFAULT_FPIR, "empty gallery")


def test_a_saved_search_reads_back_as_it_was_saved() -> None:
    saved = _outcome().as_dict()
    again = SearchOutcome.from_dict(json.loads(json.dumps(saved)))
    assert json.dumps(again.as_dict()) == json.dumps(saved)
    assert again.below_open_set_threshold
    assert again.candidates[1] == Candidate("Bob", 0.4, 0.05, 0.61, "/g/bob.jpg", 3, distance=1.0954)


def test_older_and_damaged_saved_searches_are_read() -> None:
    old = _outcome().as_dict()
    for key in ("lead_score", "gallery", "fpir"):
        del old[key]
    for c in old["candidates"]:
        del c["distance"]
    read = SearchOutcome.from_dict(old)
    assert math.isnan(read.lead_score) and read.gallery is None and read.fpir == DEFAULT_FPIR
    assert read.as_dict()["candidates"][1]["distance"] == 1.0954  # from the similarity, as it is now saved
    damaged = {"confident": "yes", "people_searched": "12", "open_set_threshold": [0.3], "lead_score": "high",
               "probe_sharpness": "sharp", "gallery": "g.db", "seconds": None,
               "candidates": [{"person": "Ann", "similarity": "0.9", "match_probability": True, "image_id": 2.0},
                              "not a candidate"]}
    read = SearchOutcome.from_dict(damaged)
    assert (read.confident, read.people_searched, read.gallery, read.seconds) == (False, 0, None, 0.0)
    assert math.isnan(read.open_set_threshold)  # damaged, not absent: the wording shows it as nan
    assert SearchOutcome.from_dict({}).open_set_threshold == float("-inf")  # absent: no open-set threshold
    assert math.isnan(read.lead_score) and math.isnan(read.probe_sharpness) and len(read.candidates) == 1
    cand = read.candidates[0]
    assert cand.person == "Ann" and math.isnan(cand.similarity) and math.isnan(cand.match_probability)
    assert cand.image_id == -1 and cand.image_path == "" and read.verdict == "no confident match"
    assert math.isnan(SearchOutcome.from_dict({"candidates": [{"distance": "far"}]}).candidates[0].distance)


def test_an_analysis_record_reads_old_and_damaged_files_without_crashing() -> None:
    import pytest

    from forensic_face.core.records import AnalysisRecord

    with pytest.raises(ValueError, match="not a JSON object"):
        AnalysisRecord.from_dict(["analysis-001"])
    hostile = AnalysisRecord.from_dict({
        "analysis_id": "analysis-009", "frame_evidence": 7, "timestamp_s": "1.5", "face": "box",
        "quality": {"face_px": "big", "sharpness": True, "hints": "blur"},
        "audio": {"evidence": "a.wav", "timestamp_s": None, "quality": {"warnings": ["clipped"]}},
        "search": ["Ann"], "engine": None, "images": {"input_face": 3, "reconstruction": None},
        "audio_effect": {"mean_abs_difference": "0.1", "other": 1}, "parameters": {"manual_box": [1, 2, 3, 4]}})
    assert (hostile.analysis_id, hostile.frame_evidence) == ("analysis-009", "7")
    assert math.isnan(hostile.timestamp_s) and hostile.face.box is None and hostile.face.landmarks == ()
    assert math.isnan(hostile.quality.face_px) and math.isnan(hostile.quality.sharpness)
    assert hostile.quality.hints == ()  # a text where a list belongs is not taken letter by letter
    assert hostile.audio.evidence == "a.wav" and math.isnan(hostile.audio.timestamp_s)
    assert hostile.audio.warnings == ("clipped",)
    assert hostile.search is None and hostile.engine.model_version == ""
    assert hostile.images == {"input_face": "3"}  # kept as text: the store refuses it as a path, saying so
    assert list(hostile.audio_effect) == ["mean_abs_difference"] and math.isnan(hostile.audio_effect[
        "mean_abs_difference"])
    assert hostile.manual_box
    # an analysis saved before the search kept its gallery, the lead score or the distance
    old = AnalysisRecord.from_dict({"frame_evidence": "cam.jpg", "timestamp_s": None, "face": {
        "box": [1, 2, 30, 40], "landmarks": [[5, 6], [7, 8]], "method": "haar"},
        "search": {"confident": False, "people_searched": 3, "open_set_threshold": 0.5,
                   "candidates": [{"person": "Ann", "similarity": 0.5, "match_probability": 0.7}]}})
    assert old.timestamp_s is None and old.face.box == (1.0, 2.0, 30.0, 40.0)
    assert old.face.landmarks == ((5.0, 6.0), (7.0, 8.0)) and not old.manual_box and old.audio is None
    assert old.search.gallery is None and math.isnan(old.search.lead_score)
    assert old.search.candidates[0].euclidean == 1.0  # from the similarity


def test_the_engine_record_names_a_companion_and_how_it_is_weighed() -> None:
    from forensic_face.core.records import EngineRecord

    plain = EngineRecord.from_dict({"model_version": "v", "recogniser": "sface", "recogniser_embeds": "input"})
    assert plain.companion == "" and not plain.searched_the_reconstruction
    fixed = EngineRecord.from_dict({"recogniser_embeds": "input", "companion": {
        "recogniser": "ff-cnn", "embeds": "reconstruction", "weight": 0.3}})
    assert fixed.companion == "ff-cnn of the reconstruction, weight 0.3" and fixed.searched_the_reconstruction
    by_quality = EngineRecord.from_dict({"recogniser_embeds": "input", "companion": {
        "recogniser": "ff-cnn", "embeds": "reconstruction", "weight": 0.5, "probe_weight": [0.2, 0.0]}})
    assert by_quality.companion == ("ff-cnn of the reconstruction, weight 0.5 for gallery faces, 0.2 to 0 for a "
                                    "probe from blurred to sharp")
    with_sharp = EngineRecord.from_dict({"recogniser_embeds": "input", "companion": {
        "recogniser": "ff-cnn", "embeds": "reconstruction", "weight": 0.5, "probe_weight": [0.2, 0.0],
        "sharp": {"recogniser": "sface", "source": "SFace as published", "share": 0.5}}})
    assert with_sharp.companion == ("ff-cnn of the reconstruction, weight 0.5 for gallery faces, 0.2 to 0 for a probe "
                                    "from blurred to sharp")
    assert with_sharp.sharp == ("SFace as published, embedding the face as found (up to 0.5 of the first recogniser's "
                                "share)") and by_quality.sharp == "" and plain.sharp == ""
    damaged = EngineRecord.from_dict({"companion": "not a dict"})
    assert damaged.companion == ""


def test_a_joined_search_keeps_which_recognisers_made_its_similarities() -> None:
    """A joined bundle's search records the weight of each recogniser's cosine (``paths``) and reads it back; a
    search without them (one recogniser, or an older file) has none, and a damaged weight reads as NaN."""
    import dataclasses

    paths = {"recogniser": 0.5, "sharp": 0.5, "companion": 0.0}
    saved = dataclasses.replace(_outcome(), paths=paths).as_dict()
    assert list(saved)[-1] == "paths" and saved["paths"] == paths
    assert SearchOutcome.from_dict(json.loads(json.dumps(saved))).paths == paths
    assert "paths" not in _outcome().as_dict() and SearchOutcome.from_dict(_outcome().as_dict()).paths is None
    damaged = SearchOutcome.from_dict({**saved, "paths": {"recogniser": "most", "sharp": 0.5}})
    assert math.isnan(damaged.paths["recogniser"]) and damaged.paths["sharp"] == 0.5
    assert SearchOutcome.from_dict({**saved, "paths": ["not", "a", "mapping"]}).paths is None
