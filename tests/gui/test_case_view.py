"""The case view's public API: what the analyst chose, read without touching its widgets."""

from __future__ import annotations

from types import SimpleNamespace

from forensic_face.gui.case_view import CaseView


def evidence(name: str, kind: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, kind=kind)


def test_choices_and_no_audio(qtbot) -> None:
    cv = CaseView()
    qtbot.addWidget(cv)
    assert cv.selected_frame() == "" and cv.selected_audio() is None and not cv.uses_audio()
    cv.allow_run(True)
    assert not cv.run_button.isEnabled()  # nothing to analyse yet
    cv.set_evidence([evidence("cam.jpg", "image"), evidence("cam.wav", "audio")])
    cv.allow_run(True)
    assert cv.run_button.isEnabled()
    assert cv.selected_frame() == "cam.jpg" and cv.selected_audio() == "cam.wav" and cv.uses_audio()
    assert cv.frame_index() is None and cv.drawn_box() is None  # a still, no box drawn
    chosen = []
    cv.audio_chosen.connect(chosen.append)
    cv.audio_combo.setCurrentIndex(1)  # "(no audio)"
    assert chosen == [""] and cv.selected_audio() is None and not cv.uses_audio()
    cv.audio_combo.setCurrentIndex(0)
    cv.use_audio.setChecked(False)
    assert chosen == ["", "cam.wav"] and not cv.uses_audio()


def test_drawing_follows_both_ways(qtbot) -> None:
    cv = CaseView()
    qtbot.addWidget(cv)
    seen = []
    cv.drawing_toggled.connect(seen.append)
    cv.set_drawing(True)
    assert cv.frame_view.drawing and seen == [True]
    cv.draw_button.click()
    assert not cv.frame_view.drawing and seen == [True, False]
    assert cv.tab_names() == ["Frame", "Compare", "Audio", "Candidates"]
    cv.show_tab(3)
    assert cv.tabs.currentIndex() == 3
