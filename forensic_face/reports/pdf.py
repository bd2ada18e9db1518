"""The case report as PDF (reportlab), for the case file.

Sections: case and analyst, the analyses in the report, those left out and those that failed;
evidence with SHA-256, provenance and verification; per analysis (withdrawn ones headed as such)
the analyst's notes, the frame with the face box, degraded face | reconstruction side by side
(reconstructions marked "generated" on the image), the audio excerpt's spectrogram and pitch, the
ranked candidates or "no confident match"; method, model versions and their measured error rates;
the audit log; the examiner's declaration with a line to sign. Every page carries the case,
generation time, page "n of N" and the statement that a candidate is a lead, not an identification.
Every font is embedded (DejaVu, from matplotlib's data). The PDF is written atomically and its
SHA-256 is recorded in the case's audit log with the analyses it holds and those left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from forensic_face.core.errors import CaseError
from forensic_face.core.progress import Progress
from forensic_face.core.records import AudioRecord, ClipRecord
from forensic_face.reports import figures
from forensic_face.reports.auditlog import LogRow, log_rows
from forensic_face.reports.content import CAVEAT, AnalysisView, ReportContent, collect
from forensic_face.reports.wording import lead_row, one_to_one_note, open_set_note, paths_note, search_verdict
from forensic_face.store.atomic import atomic_write_bytes
from forensic_face.store.case import ANALYSIS_FAILED, ANALYSIS_WITHDRAWN, Case
from forensic_face.store.verify import RESULT_OK
from forensic_face.vision.degrade import DEGRADED_LEVELS, EVAL_LEVELS
from forensic_face.vision.frames import encode_png

FONT, FONT_BOLD, FONT_MONO = "FFSans", "FFSans-Bold", "FFMono"


@dataclass
class ReportInfo:
    path: str
    sha256: str
    pages: int
    analyses: int
    verified: bool
    seconds: float
    left_out: list[str] = field(default_factory=list)  # the logged analyses not in the report
    not_logged: str = ""  # why the report could not be recorded in the case's log (empty when it was)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ------------------------------------------------------------------------------------------------ style
def _register_fonts() -> None:
    """DejaVu (shipped inside matplotlib), embedded, so any name in any script prints."""
    from matplotlib import get_data_path
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    ttf = Path(get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(ttf / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(ttf / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_MONO, str(ttf / "DejaVuSansMono.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)


def _styles():
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName=FONT, fontSize=8.5, leading=11, spaceAfter=3)
    return {
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=18, leading=22, spaceAfter=4),
        "h1": ParagraphStyle("h1", parent=base, fontName=FONT_BOLD, fontSize=13, leading=16, spaceBefore=8,
                             spaceAfter=5, textColor=colors.HexColor("#1f3b5a")),
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=10, leading=13, spaceBefore=6,
                             spaceAfter=3),
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7, leading=8.8, spaceBefore=2),
        "mono": ParagraphStyle("mono", parent=base, fontName=FONT_MONO, fontSize=6.3, leading=7.6),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.3, leading=9),
        "caveat": ParagraphStyle("caveat", parent=base, fontSize=8.5, leading=11, borderColor=colors.HexColor(
            "#b45309"), borderWidth=1, borderPadding=6, backColor=colors.HexColor("#fff7ed"), spaceBefore=6,
            spaceAfter=10),
        "verdict": ParagraphStyle("verdict", parent=base, fontName=FONT_BOLD, fontSize=11, leading=14,
                                  spaceBefore=2, spaceAfter=4),
        "withdrawn": ParagraphStyle("withdrawn", parent=base, fontSize=9, leading=12, borderColor=colors.HexColor(
            "#b91c1c"), borderWidth=1.2, borderPadding=6, backColor=colors.HexColor("#fef2f2"), spaceBefore=6,
            spaceAfter=10),
    }


def _p(text, style) -> object:
    from reportlab.platypus import Paragraph

    return Paragraph(escape(str(text)), style)


def _clip(text, n: int = 300) -> str:
    """A field read from the case, shortened for display (a hostile case file may hold pages of it)."""
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + f"… ({len(s):,} characters, shortened)"


def _gallery_text(gallery) -> str:
    """The searched gallery's identity as recorded in the analysis."""
    if not isinstance(gallery, dict):
        return "not recorded (an analysis saved before the gallery was recorded)"
    arithmetic = gallery.get("arithmetic")
    made = (f" (made in {_clip(' and '.join(map(str, arithmetic)), 60)} arithmetic)"
            if isinstance(arithmetic, list) and arithmetic else "")
    return (f"{_clip(gallery.get('path', '?'), 160)}; {gallery.get('people', '?')} people, "
            f"{gallery.get('embeddings', '?')} embeddings of model {gallery.get('model_version', '?')}{made}; "
            f"content SHA-256 {gallery.get('content_sha256', '?')}")


def _table(rows, widths, style_extra=(), header=True, font_size=7.3):
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    t = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    cmds = [("FONT", (0, 0), (-1, -1), FONT, font_size), ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#b0b7c3")),
            ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        cmds += [("FONT", (0, 0), (-1, 0), FONT_BOLD, font_size),
                 ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3"))]
    t.setStyle(TableStyle(cmds + list(style_extra)))
    return t


#: A table cell's padding, both sides, points (a little over the 3 + 3 the tables set).
_CELL_PAD = 6.5
#: Where a word too long for its cell may break: after these (a path's separators, a list's commas).
_BREAK_AFTER = "/\\,;=_-."


def _cut(word: str, width: float, font: str, size: float) -> int:
    """Where to break a word wider than ``width``: after the last break character that fits, or (a word
    without any) at the last character that fits."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    used, fits = 0.0, 0
    for ch in word:
        used += stringWidth(ch, font, size)
        if used > width:
            break
        fits += 1
    fits = max(1, fits)
    breaks = [i for i in range(1, fits) if word[i - 1] in _BREAK_AFTER]
    return breaks[-1] if breaks else fits


def fit_lines(text: str, width: float, font: str, size: float) -> list[str]:
    """``text`` in lines at most ``width`` points wide, broken at spaces; a word longer than a line breaks
    after a separator (/ , ; = _ - .), never elsewhere unless it has none."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    lines, line = [], ""
    for word in str(text).split():
        joined = f"{line} {word}" if line else word
        if stringWidth(joined, font, size) <= width:
            line = joined
            continue
        if line:
            lines.append(line)
        while stringWidth(word, font, size) > width:
            cut = _cut(word, width, font, size)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    return lines + ([line] if line else [])


def _wrapped(text, style, width_mm: float):
    """A table cell's paragraph broken by :func:`fit_lines` for a column ``width_mm`` wide (3 pt padding each
    side), so reportlab never splits a word at a random place."""
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph

    lines = fit_lines(text, width_mm * mm - _CELL_PAD, style.fontName, style.fontSize)
    return Paragraph("<br/>".join(escape(x) for x in lines), style)


def _hash_cell(digest: str, style, per_line: int = 16):
    """A hash in the monospace style, broken into lines of ``per_line`` characters (only there)."""
    from reportlab.platypus import Paragraph

    d = str(digest)
    return Paragraph("<br/>".join(escape(d[i:i + per_line]) for i in range(0, len(d), per_line)) or "—", style)


def _text_lines(text, style, limit: int = 4000):
    """An analyst's text as written (its own line breaks kept, markup printed literally), shortened past
    ``limit`` characters (a hostile log may hold pages of it)."""
    from reportlab.platypus import Paragraph

    s = str(text)
    s = s if len(s) <= limit else s[:limit] + f"… ({len(s):,} characters, shortened)"
    return Paragraph("<br/>".join(escape(line) for line in s.splitlines()) or "—", style)


def _when(iso) -> str:
    """A logged ISO time as "YYYY-MM-DD HH:MM:SS" (UTC, as logged)."""
    return str(iso)[:19].replace("T", " ")


def _who(note) -> str:
    return f"{_clip(note.analyst, 120)} (user {_clip(note.user, 60) or '?'})"


def _image(png: bytes, width_mm: float, aspect: float):
    from reportlab.lib.units import mm
    from reportlab.platypus import Image

    return Image(io.BytesIO(png), width=width_mm * mm, height=width_mm * mm * aspect)


def _num(value, fmt: str = "{:.3f}", missing: str = "—") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return missing
    return missing if not np.isfinite(v) else fmt.format(v)


def _pct(value) -> str:
    return _num(value, "{:.1%}")


def _audio_tests(ev: dict) -> str:
    """The paired tests of the voice's effect on the ROC-AUC, one p-value per level, in brackets; empty when
    the evaluation predates them."""
    found = []
    for lvl in EVAL_LEVELS:
        test = ev.get("levels", {}).get(lvl, {}).get("comparisons", {}).get("audio_vs_no_audio", {}).get("roc_auc")
        if isinstance(test, dict) and "p_value" in test:
            found.append(f"{_num(test['p_value'], '{:.2g}')} {lvl}")
    return f" (paired DeLong test of the ROC-AUC with and without the voice: p = {', '.join(found)})" if found else ""


def _with_ci(report: dict, key: str, fmt=_pct) -> str:
    """A figure with its 95 % interval ("79.2% (76.6–81.6)"), or the figure alone when none is on record."""
    text = fmt(report.get(key))
    ci = report.get("ci95", {}).get(key)
    if not (isinstance(ci, list) and len(ci) == 2):
        return text
    lo, hi = (fmt(v).rstrip("%").strip() for v in ci)
    return f"{text} ({lo}–{hi})"


def details_line(value, n: int = 240) -> str:
    """Audit details in one line: long hex digests shortened, the whole capped."""
    def walk(v):
        if isinstance(v, dict):
            return ", ".join(f"{k}={walk(x)}" for k, x in v.items() if k not in ("incoming",))
        if isinstance(v, list):
            return "[" + ", ".join(walk(x) for x in v[:6]) + (", …" if len(v) > 6 else "") + "]"
        s = str(v)
        return s[:16] + "…" if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s
    text = walk(value)
    return text if len(text) <= n else text[: n - 1] + "…"


# ------------------------------------------------------------------------------------------------ page frame
def _numbered_canvas(content: ReportContent, counted: dict):
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    class NumberedCanvas(canvas.Canvas):
        """Defers each page so the footer can say 'page n of N'."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages = []

        def showPage(self):  # noqa: N802 (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            counted["pages"] = total
            for state in self._pages:
                self.__dict__.update(state)
                self._footer(total)
                super().showPage()
            super().save()

        def _footer(self, total: int) -> None:
            w, _ = A4
            self.saveState()
            self.setStrokeColor(colors.HexColor("#b0b7c3"))
            self.line(18 * mm, 16 * mm, w - 18 * mm, 16 * mm)
            self.setFont(FONT, 7)
            self.setFillColor(colors.HexColor("#333333"))
            self.drawString(18 * mm, 12 * mm, f"Case {content.case_id[:40]} · face examination report · generated "
                                              f"{content.generated} UTC · {content.software}")
            self.drawRightString(w - 18 * mm, 12 * mm, f"page {self._pageNumber} of {total}")
            self.setFont(FONT, 6.5)
            self.drawString(18 * mm, 8.5 * mm, "A candidate is an investigative lead, not an identification. "
                                               "Reconstructions are model output, not evidence.")
            self.restoreState()

    return NumberedCanvas


# ------------------------------------------------------------------------------------------------ sections
def _title_section(c: ReportContent, st) -> list:
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph

    versions = sorted({a.record.engine.model_version or "?" for a in c.analyses})
    v = c.verification
    head = v.head or {}
    rows = [["Case", _clip(c.case_id, 120)], ["Title", _clip(c.title) or "—"], ["Analyst", _clip(c.analyst, 120)],
            ["Case opened (UTC)", _clip(c.created, 40)], ["Report generated (UTC)", c.generated],
            ["Software", c.software], ["Model version(s)", ", ".join(versions) or "no analysis yet"],
            ["Integrity", "evidence, result files and audit log verified" if v.ok else
             f"VERIFICATION FAILED ({len(v.problems)} problem(s)), see section 1"],
            ["Audit log head", f"entry {head.get('seq', '?')}, SHA-256 {head.get('hash', '?')}"
             + (f"; every entry sealed with unit key {v.sealed_with}" if v.sealed_with and v.ok else "")]]
    rows = [[_p(k, st["cell"]), _p(val, st["mono"] if k == "Audit log head" else st["cell"])] for k, val in rows]
    out = [Paragraph("Face examination report", st["title"]),
           _table(rows, [45 * mm, 129 * mm], header=False, font_size=8),
           _p("The audit log head is this case's anchor: noted outside the case folder, it lets anyone check later "
              f"that the log was not rewritten since (forensic-face case verify --expect-head "
              f"{head.get('seq', '?')}:{str(head.get('hash', '?'))[:16]}).", st["small"]),
           _p(CAVEAT, st["caveat"])]
    return out + _summary(c, st) + _failed_block(c, st)


def _left_out_text(c: ReportContent) -> str:
    names = [r.analysis_id + (" (withdrawn)" if r.withdrawn else "") for r in c.left_out]
    return ("Left out of this report at the analyst's choice: " + ", ".join(names)
            + ". They remain in the case and in its audit log.") if names else ""


def _summary(c: ReportContent, st) -> list:
    """The analyses in the report, one line each (withdrawn and altered ones marked), and those left out."""
    from reportlab.lib.units import mm

    out = []
    if c.analyses:
        out.append(_p("Summary of analyses", st["h2"]))
        srows = [["Analysis", "Frame", "Face (px)", "Audio", "Result"]]
        for a in c.analyses:
            r = a.record
            srows.append([a.analysis_id + (" (WITHDRAWN)" if a.withdrawn else "")
                          + ("" if a.trustworthy else " (ALTERED)"), r.frame_evidence or "?",
                          _num(r.quality.face_px, "{:.0f}"), "used" if r.audio else "none",
                          r.search.verdict if r.search else "no gallery search"])
        out.append(_table([[_p(x, st["cell"]) for x in r] for r in srows],
                          [26 * mm, 42 * mm, 16 * mm, 14 * mm, 76 * mm]))
    elif c.left_out:
        out.append(_p("Summary of analyses", st["h2"]))
        out.append(_p("No analysis is in this report.", st["body"]))
    if c.left_out:
        out.append(_p(_left_out_text(c), st["body"]))
    return out


def _failed_block(c: ReportContent, st) -> list:
    """The analyses that failed, with the reason the log recorded."""
    from reportlab.lib.units import mm

    if not c.failed:
        return []
    rows = [[_p(x, st["cell"]) for x in ("When (UTC)", "Frame", "Audio", "Why it failed", "Analyst / user")]]
    for f in c.failed:
        rows.append([_p(_when(f.when.time), st["mono"]), _wrapped(_clip(f.frame, 160) or "none chosen", st["cell"], 30),
                     _wrapped(_clip(f.audio, 160) or "none", st["cell"], 26), _p(_clip(f.when.text, 600), st["cell"]),
                     _p(f"{_clip(f.when.analyst, 120)} / {_clip(f.when.user, 60)}", st["cell"])])
    return [_p("Failed analyses (logged; nothing of them was saved)", st["h2"]),
            _table(rows, [29 * mm, 30 * mm, 26 * mm, 59 * mm, 30 * mm])]


def _evidence_section(c: ReportContent, st) -> list:
    from reportlab.lib import colors
    from reportlab.lib.units import mm

    out = [_p("1. Evidence and integrity", st["h1"])]
    rows = [["File (original name)", "Kind", "Size", "Added (UTC)", "SHA-256", "Check"]]
    extra = []
    for i, e in enumerate(c.evidence, 1):
        status = c.verification.evidence_status.get(e["name"], "not checked")
        orig = f" ({e['original_name']})" if e.get("original_name") and e["original_name"] != e["name"] else ""
        rows.append([_wrapped(f"{e['name']}{orig}", st["cell"], 38),
                     _p(f"{e['kind']} / {e.get('format', '')}", st["cell"]), _p(f"{int(e['size']):,} B", st["cell"]),
                     _p(_when(e.get("added", "")), st["cell"]), _hash_cell(e["sha256"], st["mono"], 32),
                     _p(status.upper() if status != "verified" else status, st["cell"])])
        if status != "verified":
            extra.append(("TEXTCOLOR", (5, i), (5, i), colors.HexColor("#b91c1c")))
    if len(rows) == 1:
        out.append(_p("The case holds no evidence.", st["body"]))
    else:
        out.append(_table(rows, [38 * mm, 20 * mm, 17 * mm, 24 * mm, 59 * mm, 16 * mm], extra))
        out += _provenance_block(c, st)
    v = c.verification
    out.append(_p("Verification (re-hashed when this report was generated)", st["h2"]))
    if v.ok:
        out.append(_p(f"All {v.evidence_checked} evidence files match the SHA-256 recorded when they were added (in "
                      "case.json and in the audit log), every result file the log recorded matches its SHA-256, the "
                      "case metadata matches what was logged at creation, no file was added outside the tool, and "
                      f"the audit log's hash chain of {v.log_entries} entries is intact up to the head recorded in "
                      "case.json.", st["body"]))
    else:
        out.append(_p(f"Verification FAILED: {len(v.problems)} problem(s). Results that depend on the named "
                      f"files cannot be relied on.", st["verdict"]))
        out += [_p(f"• {prob}", st["body"]) for prob in v.problems]
    out += [_p(f"Note: {n}", st["small"]) for n in v.notes]
    ok = sum(1 for r in c.result_checks if r.status == RESULT_OK)
    out.append(_p(f"Result files: {ok} of {len(c.result_checks)} match the SHA-256 the audit log recorded when "
                  f"they were written.", st["body"]))
    out += [_p(f"• {r.file}: {r.status}", st["body"]) for r in c.result_checks if r.status != RESULT_OK]
    out += [_p(f"• {u} (unreadable, not shown)", st["body"]) for u in c.unreadable_results]
    return out


def _provenance_block(c: ReportContent, st) -> list:
    """Each evidence file's exhibit number, who handed it over and when, as the analyst recorded them."""
    from reportlab.lib.units import mm

    rows = [[_p(x, st["cell"]) for x in ("File", "Exhibit", "Received from", "Received at",
                                         "Recorded by, when (UTC)")]]
    for e in c.evidence:
        pv = c.provenance.get(e["name"])
        fields = [pv.exhibit, pv.received_from, pv.received_at] if pv else ["", "", ""]
        rows.append([_wrapped(e["name"], st["cell"], 38)] + [_p(_clip(f, 200) or "not recorded", st["cell"])
                                                             for f in fields]
                    + [_p(f"{_who(pv.recorded)}, {_when(pv.recorded.time)}" if pv else "—", st["cell"])])
    return [_p("Exhibits and provenance", st["h2"]), _table(rows, [38 * mm, 26 * mm, 38 * mm, 30 * mm, 42 * mm]),
            _p("Where each file came from, as the analyst recorded it (forensic-face case provenance); the latest "
               "record is shown, every record is in the audit log.", st["small"])]


def _frame_png(a: AnalysisView) -> tuple[bytes, float] | None:
    if a.frame is None:
        return None
    face = a.record.face
    box = list(face.box) if face.box is not None else None
    marks = np.asarray(face.landmarks, float) if face.landmarks else None
    h, w = a.frame.shape[:2]
    aspect = min(0.75, max(0.3, 0.62 * h / w * 0.98 + 0.04))
    fig = figures.new_figure(7.2, 7.2 * aspect)
    ax1 = fig.add_axes([0.01, 0.02, 0.62, 0.9])
    figures.draw_frame(ax1, a.frame, box, marks, f"frame {a.record.frame_evidence} ({w}×{h})", label=face.method)
    if box is not None:
        region, (ox, oy) = figures.zoom_region(a.frame, box)
        ax2 = fig.add_axes([0.65, 0.02, 0.34, 0.9])
        bx = [box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy]
        lm = marks - [ox, oy] if marks is not None else None
        figures.draw_frame(ax2, region, bx, lm, "face region enlarged (as recorded)")
    return figures.figure_png(fig), aspect


#: The face figure's width and height, inches.
FACES_W, FACES_H = 7.2, 2.45


def faces_figure(a: AnalysisView):
    """The degraded input, the reconstructions (marked "generated" on the image) and their difference map
    with its grey-level scale, side by side at one scale; None without any of them."""
    roles = [("input_face", "degraded input (aligned)"),
             ("reconstruction", "reconstruction" + (" with audio" if a.record.audio else "")),
             ("reconstruction_no_audio", "reconstruction without audio"), ("difference", "|reconstruction − input|")]
    if a.record.audio is None:
        roles = [r for r in roles if r[0] != "reconstruction_no_audio"]
    panels = [(role, a.images[role], title) for role, title in roles if a.images.get(role) is not None]
    if not panels:
        return None
    fig = figures.new_figure(FACES_W, FACES_H)
    n = len(panels)
    side = min(FACES_W / n - 0.2, 1.75)  # inches: every panel the same size
    for i, (role, img, title) in enumerate(panels):
        left = ((i + 0.5) * FACES_W / n - side / 2) / FACES_W
        ax = fig.add_axes([left, 0.42 / FACES_H, side / FACES_W, side / FACES_H])
        if role == "difference":
            cax = fig.add_axes([left, 0.24 / FACES_H, side / FACES_W, 0.07 / FACES_H])
            figures.draw_difference(ax, cax, img, title)
        else:
            figures.draw_face(ax, img, title, generated=role != "input_face")
    return fig


def _faces_png(a: AnalysisView) -> tuple[bytes, float] | None:
    fig = faces_figure(a)
    return (figures.figure_png(fig), FACES_H / FACES_W) if fig is not None else None


def _audio_png(a: AnalysisView) -> tuple[bytes, float] | None:
    audio = a.record.audio
    if a.audio is None or audio is None:
        return None
    t = audio.timestamp_s if np.isfinite(audio.timestamp_s) else None
    win = audio.window_s if np.isfinite(audio.window_s) and audio.window_s else 1.0
    height = 2.9 if a.lbrp is None else 4.3
    fig = figures.new_figure(7.2, height)
    top = 1.0 - 2.9 / height  # the LBRP panel, when there is one, sits below the spectrogram
    ax_w = fig.add_axes([0.08, top + 0.72 * 2.9 / height, 0.9, 0.22 * 2.9 / height])
    ax_s = fig.add_axes([0.08, top + 0.14 * 2.9 / height, 0.9, 0.56 * 2.9 / height])
    figures.draw_audio(ax_w, ax_s, a.audio, t, win)
    ax_w.set_title(f"audio {audio.evidence}: waveform, spectrogram and pitch; analysis window "
                   f"{win:g} s at {_num(t, '{:.2f}')} s", fontsize=8)
    if a.lbrp is not None:
        ax_l = fig.add_axes([0.08, 0.45 / height, 0.9, 0.62 / height])  # inches: room for the axis label
        figures.draw_lbrp(ax_l, a.lbrp)
        ax_l.set_title("LBRP texture of the analysis window (the audio features the autoencoder received)",
                       fontsize=8)
    return figures.figure_png(fig), height / 7.2


def _analysis_section(a: AnalysisView, index: int, st) -> list:
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, PageBreak

    r = a.record
    out = [PageBreak(), _p(f"{index}. Analysis {a.analysis_id}" + (" — WITHDRAWN" if a.withdrawn else ""), st["h1"])]
    if a.withdrawn is not None:
        w = a.withdrawn
        reason = _clip(w.text, 2000)
        out.append(_p(f"WITHDRAWN on {_when(w.time)} UTC by {_who(w)}. Reason: {reason}"
                      f"{'' if reason.endswith(('.', '!', '?')) else '.'} The analysis stays in the case and is shown "
                      "here for the record; its results must not be relied on.", st["withdrawn"]))
    engine, face = r.engine, r.face
    when = "still image" if r.timestamp_s is None else f"frame at {_num(r.timestamp_s, '{:.3f}')} s"
    box_src = "drawn by the analyst" if r.manual_box else f"detected ({face.method or '?'})"
    rows = [["Frame evidence", f"{r.frame_evidence or '?'} — {when}"], ["Frame SHA-256", r.frame_sha256],
            ["Face box", f"{box_src}; alignment: {face.alignment or '?'}; selection: {face.selection or '?'}"],
            ["Models", f"{engine.model_version or '?'} on {engine.device or '?'} (torch {engine.torch or '?'}; "
                       f"recognisers in {engine.precision or 'float32'} arithmetic), "
                       f"weights SHA-256 {engine.weights_sha256 or '?'}"
                       + (f", match calibration SHA-256 {engine.calibration_sha256}"
                          if engine.calibration_sha256 else "")],
            ["Gallery", _gallery_text(r.search.gallery) if r.search is not None else "none searched"],
            ["Parameters", json.dumps(r.parameters, sort_keys=True)], ["Software", r.software or "?"],
            ["Duration", f"{_num(r.seconds, '{:.2f}')} s"]]
    out.append(_table([[_p(k, st["cell"]), _p(v, st["mono"] if "SHA" in k or k == "Parameters" else st["cell"])]
                       for k, v in rows], [30 * mm, 144 * mm], header=False))
    out += [_p(f"Problem: {p}", st["body"]) for p in a.problems]
    out += _notes_block(a, st)
    frame = _frame_png(a)
    out.append(_p("Frame and face", st["h2"]))
    out.append(_image(frame[0], 174, frame[1]) if frame else _p(a.frame_problem or "frame not available", st["body"]))
    out.append(KeepTogether(_faces_block(a, st)))
    if r.clip is not None:
        out += _clip_block(a, r.clip, st)
    if r.audio is not None:
        out.append(KeepTogether(_audio_block(a, r.audio, st)))
    else:
        out.append(_p("Audio: not used in this analysis.", st["body"]))
    out.append(KeepTogether(_search_block(a, st)))
    return out


def _notes_block(a: AnalysisView, st) -> list:
    """The analyst's notes on the analysis, oldest first, each with who wrote it and when."""
    if not a.notes:
        return []
    out = [_p("Analyst's notes", st["h2"])]
    for note in a.notes:
        out += [_p(f"{_when(note.time)} UTC, {_who(note)}:", st["small"]), _text_lines(note.text, st["body"])]
    return out


def _faces_block(a: AnalysisView, st) -> list:
    """The degraded input beside its reconstructions, the input's quality and what the audio changed."""
    faces, q, effect = _faces_png(a), a.record.quality, a.record.audio_effect
    block = [_p("Degraded input and reconstruction (same scale)", st["h2"])]
    block.append(_image(faces[0], 174, faces[1]) if faces else _p("face images not available", st["body"]))
    block.append(_p(
        f"Input quality: face {_num(q.face_px, '{:.0f}')} px wide in the frame; sharpness "
        f"{_num(q.sharpness, '{:.1f}')} (Laplacian variance); noise σ "
        f"{_num(q.noise_sigma, '{:.2f}')} grey levels; mean level "
        f"{_num(q.mean_level, '{:.0f}')}; contrast {_num(q.contrast, '{:.1f}')}. "
        + ("Warnings: " + "; ".join(q.hints) + "." if q.hints else "No quality warnings."), st["body"]))
    if effect:
        block.append(_p(f"Effect of the audio on the reconstruction: mean absolute difference "
                        f"{_num(effect.get('mean_abs_difference'), '{:.3f}')} grey levels (max "
                        f"{_num(effect.get('max_abs_difference'), '{:g}', '?')}). On the evaluation set the audio "
                        f"did not change recognition measurably (section 'Method and error rates').", st["small"]))
    eng = a.record.engine
    block.append(_p(f"The reconstruction is model output; the search joined the recogniser's embedding of the face "
                    f"as found with a companion recogniser's ({eng.companion}) embedding of this reconstruction"
                    + (f", and for sharper probes with {eng.sharp}" if eng.sharp else "") + ". It is not evidence."
                    if eng.companion else
                    "The reconstruction is model output for comparison by the recogniser; it is not evidence."
                    if eng.searched_the_reconstruction else
                    "The reconstruction is model output shown for comparison; the search used the recogniser's "
                    "embedding of the face as found, not the reconstruction. It is not evidence.", st["small"]))
    return block


def _clip_block(a: AnalysisView, clip: ClipRecord, st) -> list:
    """The frames of the clip's track that the analysis pooled: the strip, and each frame's time, quality and
    weight (the evidence for the pooled template and its reconstruction)."""
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether

    n = len(clip.frames)
    out = [_p(f"Frames pooled from the clip (track {clip.track or '?'})", st["h2"]),
           _p(f"The face was followed through the clip ({_num(clip.tracks_found, '{:.0f}')} track(s) found) and "
              f"{n} frame(s) of this track were pooled: {clip.pooling or '?'}. Calibration of the pooled template's "
              f"match probability: {clip.calibration or '?'}"
              + (f" (SHA-256 {clip.calibration_sha256}; the Models row's calibration is the single frame's)."
                 if clip.calibration_sha256 else ".")
              + ("".join(f" Warning: {w}." for w in clip.warnings)), st["body"])]
    strip = a.images.get("track_strip")
    if strip is not None:
        out.append(_image(encode_png(strip), 174, strip.shape[0] / strip.shape[1]))
    rows = [["Frame", "Time (s)", "Found by", "Face px", "Sharpness", "Noise σ", "Turn", "Weight"]]
    rows += [[_num(f.index, "{:.0f}"), _num(f.time_s, "{:.3f}"), f.method or "?", _num(f.face_px, "{:.0f}"),
              _num(f.sharpness, "{:.1f}"), _num(f.noise_sigma, "{:.1f}"), _num(f.turn, "{:.2f}"),
              _num(f.weight, "{:.3f}")] for f in clip.frames]
    table = _table([[_p(str(v), st["cell"]) for v in row] for row in rows],
                   [16 * mm, 20 * mm, 34 * mm, 18 * mm, 22 * mm, 20 * mm, 18 * mm, 20 * mm])
    return [KeepTogether(out), table]  # the heading stays with its strip


def _audio_block(a: AnalysisView, audio: AudioRecord, st) -> list:
    """The audio window the analysis used: its figure and its figures."""
    block = [_p("Audio", st["h2"])]
    apng = _audio_png(a)
    block.append(_image(apng[0], 174, apng[1]) if apng else _p(a.audio_problem, st["body"]))
    block.append(_p(
        f"Evidence {audio.evidence or '?'} (SHA-256 {audio.sha256 or '?'}); window "
        f"{_num(audio.window_s, '{:g}')} s centred at {_num(audio.timestamp_s, '{:.2f}')} s; median "
        f"pitch in the window {_num(audio.pitch_hz, '{:.0f}')} Hz; voiced fraction "
        f"{_pct(audio.voiced_fraction)}; peak {_num(audio.peak_dbfs, '{:.1f}')} dBFS, RMS "
        f"{_num(audio.rms_dbfs, '{:.1f}')} dBFS"
        + ("; warnings: " + "; ".join(audio.warnings) if audio.warnings else "") + ".", st["body"]))
    return block


def _search_block(a: AnalysisView, st) -> list:
    """The search as a search: the lead decision and its false-lead rate first, what the one-to-one figures
    are, then the candidates, the lead (if any) the only row highlighted."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Image

    search = a.record.search
    block = [_p("Gallery search", st["h2"])]
    if search is None:
        return block + [_p("No gallery was searched in this analysis.", st["body"])]
    cands = search.candidates
    block.append(_p(search_verdict(search), st["verdict"]))
    block.append(_p(
        f"{search.people_searched} people ({search.embeddings_searched} gallery images) "
        f"compared with model {search.model_version or '?'}. " + open_set_note(search) + " "
        + one_to_one_note(search) + f" It reaches 0.5 at cosine similarity {_num(search.threshold_similarity)}"
        + (f" for a probe of this sharpness ({_num(search.probe_sharpness, '{:.0f}')}; a blurred probe's "
           f"threshold is lower, because its same-person similarities are)" if search.probe_sharpness
           is not None else "") + ". Identity probability: softmax over all gallery people with a fitted "
        "temperature (it says how the probability divides among the people in this gallery, and assumes the "
        "person is in it). " + paths_note(search), st["small"]))
    rows = [["#", "Gallery face", "Person", "Identity\nprobability", "Cosine\nsimilarity", "Euclidean\ndistance",
             "One-to-one\nmatch\nprobability"]]
    for k, c in enumerate(cands, 1):
        thumb = a.thumbnails[k - 1] if k - 1 < len(a.thumbnails) else None
        cell = _p("—", st["cell"])
        if thumb is not None:
            fig = figures.new_figure(0.6, 0.6, dpi=120)
            ax = fig.add_axes([0, 0, 1, 1])
            ax.imshow(thumb, cmap="gray" if thumb.ndim == 2 else None, vmin=0, vmax=255)
            ax.axis("off")
            cell = Image(io.BytesIO(figures.figure_png(fig)), width=12 * mm, height=12 * mm)
        rows.append([str(k), cell, _p(c.person, st["cell"]), _num(c.identity_probability), _num(c.similarity),
                     _num(c.euclidean), _num(c.match_probability)])
    lead = lead_row(search)
    extra = [] if lead is None else [("BACKGROUND", (0, lead + 1), (-1, lead + 1), colors.HexColor("#fef3c7"))]
    if cands:
        block.append(_table(rows, [8 * mm, 19 * mm, 46 * mm, 26 * mm, 25 * mm, 25 * mm, 25 * mm],
                            extra + [("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return block


def _settings_sentence(rows, used: set[float]) -> str:
    """What each false-lead setting gave on the evaluation gallery's clean probes, the settings this report's
    searches used marked; empty for evaluations without the figures."""
    parts = []
    for r in sorted((r for r in rows or [] if isinstance(r, dict) and isinstance(r.get("fpir"), (int, float))),
                    key=lambda r: r["fpir"]):
        no_lead = (r.get("not_enrolled_no_confident_match") or {}).get("rate")
        found = (r.get("enrolled_found_confidently") or {}).get("rate")
        if not isinstance(no_lead, (int, float)):
            continue
        parts.append(f"{_pct(r['fpir'])}{' (used here)' if round(float(r['fpir']), 6) in used else ''}: "
                     f"{_pct(1.0 - no_lead)} false leads, {_pct(found)} of the enrolled found")
    if not parts:
        return ""
    return (" Each false-lead setting (set on calibration searches) against what it gave on clean probes of that "
            "gallery: " + "; ".join(parts) + ".")


def _joined(companion: dict) -> str:
    """How the method section says a companion's similarity is joined to the recogniser's."""
    pw = companion.get("probe_weight")
    if not pw:
        return (f"the cosine similarity searched with is {1 - companion['weight']:g} × the first's plus "
                f"{companion['weight']:g} × the second's (the weight chosen on held-out people)")
    from forensic_face.models.bundle import mean_weights  # torch only when a joined bundle is described

    def share(lam: float) -> float:  # the second cosine's share of the mean at a probe's l
        return float(mean_weights(lam, companion["weight"])[1])

    sharp = companion.get("sharp")
    return (f"the similarity searched with is a weighted mean of the two cosines, the second's share "
            f"{share(pw[0]):.2f} for a blurred probe, changing with the probe's sharpness to {share(pw[1]):.2f} for a "
            "sharp one"
            + (" (a probe as sharp as a clean face is compared by the first alone" if pw[1] == 0 else " (")
            + ("; " if pw[1] == 0 else "") + "the shares chosen on held-out people)"
            + ("" if not sharp else
               f"; for sharper probes SFace as published (OpenCV Zoo's weights, unchanged) joins the first: its "
               f"cosine takes up to {sharp['share']:.0%} of the first's share, none for a probe of sharpness "
               f"{math.expm1(sharp['quality_range'][0]):.0f} or less, that share from "
               f"{math.expm1(sharp['quality_range'][1]):.0f} up (which 95 % of clean faces reach), since the tuned "
               "recogniser lost some of the published network's accuracy on clean faces (chosen on held-out "
               "people; each search's report gives the shares it used)"
               + ("" if not sharp.get("cross") else
                  f"; and {sharp['cross']:.0%} of the first's cosine compares the probe's tuned embedding with the "
                  "gallery face's published SFace embedding instead of its tuned one, since the tuning taught the "
                  "first network to land on that embedding (chosen on held-out people)")))


def _moved_back(tuning: dict | None) -> str:
    """The method section's words for tuned weights moved back towards SFace's published ones, when they were."""
    share = (tuning or {}).get("teacher_share") or 0.0
    if not share:
        return ""
    return (f", then every tuned weight moved {share:g} of the way back to SFace's published value by weight-space "
            "ensembling, which keeps more of the published network's accuracy on sharp faces; the share was chosen "
            "on held-out people")


def _method_section(c: ReportContent, st, n: int) -> list:
    from reportlab.platypus import PageBreak

    out = [PageBreak(), _p(f"{n}. Method and error rates", st["h1"])]
    ev = c.evaluation
    companion = ((ev or {}).get("engine") or {}).get("companion")
    own_crop = bool(ev) and (ev.get("product_scores") == "degraded" or companion is not None)  # the face as found
    recogniser = (
        "a recogniser derived from SFace (OpenCV Zoo's MobileFaceNet, Apache-2.0; its later blocks tuned by this "
        f"project on degraded faces of its training people{_moved_back(c.recogniser_tuning)}) embeds the face as "
        "found, aligned on the five-point template to a 112×112 crop (128-D); "
        + (f"the project's own CNN embeds the reconstruction (128-D), and the two are joined: {_joined(companion)}"
           if companion else "the reconstruction is shown beside it for the examiner and is not what is searched")
        if own_crop else "a CNN embeds the reconstruction (128-D)")
    out.append(_p(
        "Face: detected with dlib's HOG detector at 1×, 2× and 4× upsampling, then OpenCV's Haar cascade, and "
        "aligned on the eyes (five landmarks) to a 64×64 grey crop for the reconstruction"
        + (" and on the five-point template to a 112×112 crop for recognition" if own_crop else "")
        + "; or the analyst drew the box. Audio: resampled to "
        "16 kHz mono, denoised (spectral subtraction, 80–4000 Hz band-pass, Wiener), pitch (YIN) and energy per "
        "video frame, and LBRP texture features (uniform local binary patterns over a Radon transform of the "
        "log-mel spectrogram) in a 1 s window at the frame's time. A convolutional autoencoder whose bottleneck "
        f"fuses the face and audio codes reconstructs the face; {recogniser}; "
        + ("that similarity against every gallery image gives the ranking (the Euclidean distance √(2 − "
           "2·similarity), that of unit-length embeddings at that cosine, is listed beside it and ranks the same)"
           if companion else
           "cosine similarity against every gallery image gives the ranking (the Euclidean distance between the "
           "unit-length embeddings, √(2 − 2·cosine), is listed beside it and ranks the same)")
        + "; a fitted softmax gives identity "
        "probabilities and a logistic of the similarity and the probe's sharpness, fitted on held-out people, "
        "the match probability.", st["body"]))
    if not ev:
        out.append(_p("The measured error rates of the models are not on record in this installation "
                      "(resources/models/evaluation.json is missing).", st["verdict"]))
        return out
    out += _error_rates(c, ev, st)
    out.append(_p("Reconstruction: " + "; ".join(_reconstruction_figures(ev)) + ".", st["body"]))
    ident = ev.get("identification")
    if isinstance(ident, dict) and isinstance(ident.get("levels"), dict):
        out.append(_p(_search_figures(c, ident), st["body"]))
    out += _known_limits(ev, st)
    if c.model_card_sha256:
        out.append(_p(f"Model card: resources/models/MODEL_CARD.md, SHA-256 {c.model_card_sha256}.", st["small"]))
    return out


def _error_rates(c: ReportContent, ev: dict, st) -> list:
    """The evaluation's description, a caution when the analyses used other models, and the error-rate table."""
    from reportlab.lib.units import mm

    out = []
    versions = {a.record.engine.model_version for a in c.analyses if a.record.engine.model_version}
    ev_version = str(ev.get("engine", {}).get("model_version", "?"))
    split = ev.get("split", {})
    out.append(_p(
        f"Measured error rates of models {ev_version} on the LFW View 1 DevTest pairs ({ev.get('pairs', '?')} "
        f"pairs, {ev.get('matched', '?')} same-person; {split.get('test_people', '?')} people never used in training "
        f"or in fitting the thresholds). The probe face was degraded with the CCTV model at each level, the gallery "
        f"face was clean; thresholds were fitted on separate people.", st["body"]))
    if versions and versions != {ev_version}:
        out.append(_p(f"Caution: analyses in this report used model version(s) {', '.join(sorted(versions))}; "
                      f"the figures below belong to {ev_version}.", st["verdict"]))
    measured_in = str(ev.get("engine", {}).get("precision") or "float32")
    ran_in = sorted({a.record.engine.precision or "float32" for a in c.analyses} - {measured_in})
    if ran_in:
        out.append(_p(f"The recognisers ran in {' and '.join(ran_in)} arithmetic in "
                      f"{'some of the analyses' if len(c.analyses) > 1 else 'the analysis'} of this report, and "
                      f"in {measured_in} for the figures below: the similarities differ by the rounding between "
                      f"the two (about 0.001 in a cosine similarity).", st["small"]))
    rows = [["Level", "Accuracy", "False match rate", "False non-match rate", "ROC-AUC", "TAR @ FAR 1 %",
             "dlib reference accuracy"]]
    for lvl in EVAL_LEVELS:
        m = ev.get("levels", {}).get(lvl, {})
        r = m.get(f"{ev.get('product_scores', 'recon')}_with_audio", {})
        ref = m.get("dlib_reference", {}).get("at_0.6", {})
        rows.append([lvl, _with_ci(r, "accuracy"), _with_ci(r, "false_match_rate"),
                     _with_ci(r, "false_non_match_rate"), _with_ci(r, "roc_auc", _num),
                     _pct(r.get("tar_at_far_1e-2")), _with_ci(ref, "accuracy")])
    out.append(_table([[_p(x, st["cell"]) for x in r] for r in rows],
                      [16 * mm, 25 * mm, 25 * mm, 27 * mm, 25 * mm, 20 * mm, 36 * mm]))
    if any("ci95" in ev.get("levels", {}).get(lvl, {}).get(f"{ev.get('product_scores', 'recon')}_with_audio", {})
           for lvl in EVAL_LEVELS):
        out.append(_p("In brackets: the 95 % interval of each figure on these pairs (Wilson's interval for the rates, "
                      "DeLong's for the ROC-AUC). It says how far the figure could lie from the one this test set "
                      "measured; it does not cover footage unlike the test set.", st["small"]))
    published = _published_reference(ev)
    if published:
        out.append(_p(published, st["body"]))
    return out


def _published_reference(ev: dict) -> str:
    """The published recogniser measured beside the models in the same evaluation (SFace as its authors ship it),
    level by level, with where it was significantly more accurate; empty when the evaluation has none."""
    ref = ev.get("reference") or {}
    levels = ev.get("levels", {})
    figures, ahead = [], []
    for lvl in EVAL_LEVELS:
        r = next(iter((levels.get(lvl, {}).get("reference") or {}).values()), None)
        if not isinstance(r, dict) or "accuracy" not in r:
            return ""
        figures.append(f"{lvl} {_pct(r['accuracy'])}")
        test = (levels[lvl].get("comparisons", {}).get("ours_vs_reference") or {}).get("accuracy") or {}
        if test.get("p_value", 1) < 0.05 and test.get("accuracy_b", 0) > test.get("accuracy_a", 1):
            ahead.append(f"{lvl} (p = {test['p_value']:.2g})")
    threshold = ref.get("threshold")
    return (f"For comparison, {ref.get('name', 'a published recogniser')} (not tuned; same probes and detections"
            + (f", same person at its publisher's cosine {threshold:g}" if threshold is not None else "")
            + f") reached an accuracy of {', '.join(figures)} in the same evaluation. "
            + (f"It was significantly more accurate than these models at: {', '.join(ahead)}." if ahead else
               "It was not significantly more accurate than these models at any level."))


def _reconstruction_figures(ev: dict) -> list[str]:
    """Reconstruction PSNR / SSIM against bicubic upsampling at each degraded level, one phrase each."""
    rec = []
    for lvl in DEGRADED_LEVELS:
        m = ev.get("levels", {}).get(lvl, {})
        gain = m.get("comparisons", {}).get("psnr_gain_over_bicubic_db", {}).get("with_audio", {})
        gain_ci = gain.get("ci95") if isinstance(gain, dict) else None
        rec.append(f"{lvl}: reconstruction PSNR {_num(m.get('reconstruction_with_audio', {}).get('psnr_db'), '{:.2f}')}"
                   f" dB / SSIM {_num(m.get('reconstruction_with_audio', {}).get('ssim'))} against the clean face, "
                   f"bicubic upsampling {_num(m.get('bicubic', {}).get('psnr_db'), '{:.2f}')} dB / "
                   f"{_num(m.get('bicubic', {}).get('ssim'))}"
                   + (f" (gain {_num(gain.get('mean'), '{:+.2f}')} dB, 95 % interval {_num(gain_ci[0], '{:+.2f}')} "
                      f"to {_num(gain_ci[1], '{:+.2f}')} dB)" if isinstance(gain_ci, list) and len(gain_ci) == 2
                      else ""))
    return rec


def _search_figures(c: ReportContent, ident: dict) -> str:
    """The gallery-search figures of the evaluation (ranks, false leads, leads found), in one paragraph."""
    lv = ident["levels"]

    def rate(level: str, key: str) -> str:
        return _pct((lv.get(level, {}).get(key) or {}).get("rate"))

    def false_leads(level: str) -> str:
        r = (lv.get(level, {}).get("not_enrolled_no_confident_match") or {}).get("rate")
        return _pct(1.0 - r if isinstance(r, (int, float)) else None)

    target = (lv.get("clean") or {}).get("fpir_target")
    used = {round(a.record.search.fpir, 6) for a in c.analyses if a.record.search is not None}
    return (
        f"Gallery search, measured on a gallery of {ident.get('gallery_people', '?')} people (one image each): "
        f"the right person ranked first for {rate('clean', 'rank_1')} / {rate('mild', 'rank_1')} / "
        f"{rate('severe', 'rank_1')} of probes (clean / mild / severe) and among the first five for "
        f"{rate('clean', 'rank_5')} / {rate('mild', 'rank_5')} / {rate('severe', 'rank_5')}. A search for "
        f"someone not in that gallery ended with a false lead in {false_leads('clean')} / {false_leads('mild')} / "
        f"{false_leads('severe')} of cases"
        + (f" (the lead threshold is set for {_pct(target)} on held-out calibration searches)"
           if isinstance(target, (int, float)) else "")
        + f", and an enrolled person was found with a lead in {rate('clean', 'enrolled_found_confidently')} / "
        f"{rate('mild', 'enrolled_found_confidently')} / {rate('severe', 'enrolled_found_confidently')}: a "
        "lead needs the best candidate to stand out from the next ones by a margin that searches for strangers "
        "rarely reach, and most true matches do not reach it. A candidate list without a lead is a ranking, "
        "not a finding." + _settings_sentence((lv.get("clean") or {}).get("by_fpir_setting"), used))


def _known_limits(ev: dict, st) -> list:
    out = [_p("Known limits", st["h2"])]
    limits = [
        "The models were trained and measured on LFW (celebrity photographs) with simulated CCTV degradation; "
        "error rates on real CCTV footage, other populations, extreme poses or faces under 20 px may be worse.",
        "The audio in the evaluation was synthetic (espeak-ng, one seeded voice per person), not recorded with "
        "the faces; on the evaluation set the audio did not change recognition measurably" + _audio_tests(ev) + ".",
        "Identity probabilities assume the person is in the gallery; a person who is not enrolled still receives "
        "a ranking. Rely on the match probability and the verdict, not the rank.",
        "The dlib reference column shows dlib's face recogniser at its standard 0.6 threshold on the same pairs.",
    ]
    if (ev.get("calibration") or {}).get("quality_range"):
        limits.insert(3, "The match probability takes the probe's sharpness into account, because blurred faces "
                         "score lower similarities. A face that is partly covered (scarf, mask) or very noisy "
                         "measures as sharp, so its true matches are more often missed (model card, 'Match "
                         "calibration').")
    return out + [_p(f"• {t}", st["body"]) for t in limits]


#: The audit log table's columns, mm: #, time, action and who, details, entry hash (16 characters a line).
_LOG_WIDTHS = (13, 34, 33, 70, 24)
#: Log actions whose rows are shaded: what a reader must not miss.
_MARKED_ACTIONS = (ANALYSIS_WITHDRAWN, ANALYSIS_FAILED)


def _log_row(r: LogRow, st) -> list:
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph

    width, size = _LOG_WIDTHS[2] * mm - _CELL_PAD, st["cell"].fontSize
    action = [f"<b>{escape(x)}</b>" for x in fit_lines(r.action, width, FONT_BOLD, size)]
    who = [escape(x) for x in fit_lines(r.who, width, FONT, size)]
    return [_p(r.seq, st["cell"]), _p(r.time, st["mono"]), Paragraph("<br/>".join(action + who), st["cell"]),
            _wrapped(r.details or details_line(r.raw), st["cell"], _LOG_WIDTHS[3]), _hash_cell(r.hash, st["mono"])]


def _audit_section(c: ReportContent, st, n: int) -> list:
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak

    shown = log_rows(c.log_entries)
    groups = [r for r in shown if r.entries > 1]
    grouped = (f"; the {sum(r.entries for r in groups)} per-file entries of {len(groups)} analyses saved by an "
               f"older version shown one row per analysis" if groups else "")
    out = [PageBreak(), _p(f"{n}. Audit log ({len(c.log_entries)} entries{grouped})", st["h1"]),
           _p("Every step recorded in the case, oldest first. Each entry carries the SHA-256 of the previous one "
              "(hash chain), so an entry's hash stands for it and everything before it; the chain was verified "
              "when this report was generated (section 1).", st["small"])]
    rows = [[_p(x, st["cell"]) for x in ("#", "Time (UTC)", "Action, analyst / user", "Details", "Entry hash")]]
    marked = []
    for i, r in enumerate(shown, 1):
        rows.append(_log_row(r, st))
        if r.action in _MARKED_ACTIONS:
            marked.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#fef2f2")))
    out.append(_table(rows, [w * mm for w in _LOG_WIDTHS], marked))
    return out


def _declaration_section(c: ReportContent, st, method_n: int) -> list:
    """What the examiner declares, and the lines to sign."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Spacer, Table, TableStyle

    ids = [a.analysis_id for a in c.analyses]
    withdrawn = [a.analysis_id for a in c.analyses if a.withdrawn]
    text = (f"I examined the evidence listed in section 1 with {c.software}. "
            + (f"This report holds the analyses {', '.join(ids)}, made as the audit log records"
               if ids else "This report holds no analysis")
            + (f"; {', '.join(withdrawn)} {'was' if len(withdrawn) == 1 else 'were'} withdrawn and "
               f"{'is' if len(withdrawn) == 1 else 'are'} shown for the record only" if withdrawn else "")
            + (f"; {len(c.failed)} failed {'analysis is' if len(c.failed) == 1 else 'analyses are'} listed on the "
               "first page" if c.failed else "") + ". " + (_left_out_text(c) + " " if c.left_out else "")
            + f"The figures, rankings and reconstructions are the software's output, with the measured error rates "
              f"given in section {method_n}. A candidate named in this report is an investigative lead, not an "
              "identification; a reconstruction is generated by a model and is not evidence of what anyone looks "
              "like.")
    sign = Table([[_p("Examiner", st["cell"]), _p(_clip(c.analyst, 120), st["body"])],
                  [_p("Date", st["cell"]), _p(c.generated[:10], st["body"])],
                  [_p("Signature", st["cell"]), ""]], colWidths=[30 * mm, 100 * mm],
                 rowHeights=[None, None, 16 * mm], hAlign="LEFT")
    sign.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), FONT, 9), ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                              ("LINEBELOW", (1, 2), (1, 2), 0.8, colors.black)]))
    return [KeepTogether([_p("Examiner's declaration", st["h1"]), _p(text, st["body"]), Spacer(1, 4 * mm), sign])]


# ------------------------------------------------------------------------------------------------ entry point
def build_pdf(content: ReportContent) -> tuple[bytes, int]:
    """The report's bytes and its page count."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    _register_fonts()
    st = _styles()
    story = _title_section(content, st) + _evidence_section(content, st)
    for i, a in enumerate(content.analyses, 2):
        story += _analysis_section(a, i, st)
    n = len(content.analyses) + 2
    story += _method_section(content, st, n) + _audit_section(content, st, n + 1) + _declaration_section(
        content, st, n)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=22 * mm, title=f"Face examination report — case {content.case_id}",
                            author=content.analyst, subject="forensic_face case report",
                            creator=content.software, initialFontName=FONT)
    counted: dict = {}
    doc.build(story, canvasmaker=_numbered_canvas(content, counted))
    return buf.getvalue(), int(counted.get("pages", 0))


def write_report(case: Case, out: str | Path, progress: Progress | None = None,
                 analyses: list[str] | None = None) -> ReportInfo:
    """Verify the case, write the PDF atomically to ``out`` and log it (with its SHA-256) in the case.
    ``analyses``: the ids of the logged analyses to put in (default all); the others are named in the
    report and in its log entry as left out. CaseError for an id the log does not record."""
    t0 = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".pdf":
        raise CaseError(f"{out}: the report file name must end in .pdf")
    root = case.root.resolve()
    target = out.resolve()
    if target.is_relative_to(root / "evidence") or target.is_relative_to(root / "results") \
            or target in (root / "case.json", root / "audit.log", root / ".lock"):
        raise CaseError(f"{out}: refusing to write the report into the case's evidence, results or records; "
                        "write it beside the case folder")
    if out.is_dir():
        raise CaseError(f"{out}: is a folder; give a file name ending in .pdf")
    step = progress or Progress()
    content = collect(case, step, analyses)
    step.update(4, 5, "laying out the PDF")
    data, pages = build_pdf(content)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    digest = hashlib.sha256(data).hexdigest()
    not_logged = ""
    try:
        case.append_log("report.exported", {"file": str(target), "sha256": digest, "pages": pages,
                                            "analyses": [a.analysis_id for a in content.analyses],
                                            "left_out": [r.analysis_id for r in content.left_out],
                                            "verified": content.verification.ok,
                                            "covers_head": content.verification.head}, progress)
    except CaseError as exc:  # a case whose record is in doubt, or a read-only copy, still gets its report
        not_logged = str(exc)
    step.update(5, 5, "done")
    return ReportInfo(path=str(out), sha256=digest, pages=pages, analyses=len(content.analyses),
                      verified=content.verification.ok, seconds=round(time.perf_counter() - t0, 2),
                      not_logged=not_logged, left_out=[r.analysis_id for r in content.left_out])
