"""Audio evidence: load (16 kHz mono), denoise, prosody (F0, energy, voice activity) and LBRP.

Typical use::

    clip = load_audio("evidence/interview.wav")
    # a long recording: read its header, then decode only a window around the time of interest
    info = audio_info("evidence/day.wav")          # info.duration_s; no sample decoded
    clip = load_audio("evidence/day.wav", around_s=t)
    feats = audio_features(clip, frame_timestamps_s)   # feats.vector: (frames, dim)

A video file's own sound is read like an audio file (``load_audio("evidence/clip.mp4")``), on the clock of its
frames; ``has_audio_track(path)`` says whether it has one.

No Qt and no torch here; only numpy, scipy, soundfile, PyAV, soxr and librosa. The ``denoise`` function
is not re-exported here because it would hide the ``forensic_face.audio.denoise`` module; use
``from forensic_face.audio.denoise import denoise``.
"""

from forensic_face.audio.denoise import bandpass, spectral_subtraction, wiener
from forensic_face.audio.features import (
    AudioFeatureConfig,
    AudioFeatureExtractor,
    AudioFeatures,
    audio_features,
)
from forensic_face.audio.info import AudioInfo, audio_info, has_audio_track
from forensic_face.audio.io import AudioClip, AudioQuality, audio_from_array, load_audio
from forensic_face.audio.lbrp import LBRPConfig, lbrp_features
from forensic_face.audio.prosody import (
    PROSODY_COLUMNS,
    ProsodyConfig,
    ProsodyTrack,
    per_frame_prosody,
    prosody_track,
)
from forensic_face.audio.synth import chirp, synth_speech

__all__ = [
    "PROSODY_COLUMNS",
    "AudioClip",
    "AudioFeatureConfig",
    "AudioFeatureExtractor",
    "AudioFeatures",
    "AudioInfo",
    "AudioQuality",
    "LBRPConfig",
    "ProsodyConfig",
    "ProsodyTrack",
    "audio_features",
    "audio_from_array",
    "audio_info",
    "bandpass",
    "chirp",
    "has_audio_track",
    "lbrp_features",
    "load_audio",
    "per_frame_prosody",
    "prosody_track",
    "spectral_subtraction",
    "synth_speech",
    "wiener",
]
