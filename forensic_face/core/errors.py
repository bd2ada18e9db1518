"""One error hierarchy. Every message says what went wrong and, where possible, what to do.

The CLI prints ``str(error)`` on one line and exits 1; the GUI shows it in a dialog.
"""

from __future__ import annotations

import errno


class ForensicFaceError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(ForensicFaceError):
    """An input file or argument cannot be used."""


class ImageDecodeError(InputError):
    """An image file is missing, empty, corrupt, or in an unsupported format."""


class VideoDecodeError(InputError):
    """A video file cannot be opened or yields no frames."""


class VideoDamagedError(VideoDecodeError):
    """A video whose stream breaks off early or has parts that cannot be decoded.

    Raised by the frame reader after the last frame it could decode: the ``frames_read`` frames yielded before
    it (up to ``read_until_s``, s) may be used; the message says what is missing or damaged.
    """

    def __init__(self, message: str, frames_read: int, read_until_s: float | None) -> None:
        super().__init__(message)
        self.frames_read = frames_read
        self.read_until_s = read_until_s


class AudioError(InputError):
    """Audio that cannot be used for analysis."""


class AudioDecodeError(AudioError):
    """Audio file missing, empty or undecodable."""


class NoAudioTrackError(AudioError):
    """A video file that carries no sound: its audio must come from a separate recording."""


class AudioSilentError(AudioError):
    """Audio whose level is too low to carry speech."""


class AudioClippedError(AudioError):
    """Audio where too many samples sit at full scale for features to be trusted."""


class SampleRateError(AudioError):
    """Audio recorded at a rate that cannot represent the speech band."""


class NoFaceFoundError(ForensicFaceError):
    """No face was detected; the caller may supply a face box by hand."""


class CancelledError(ForensicFaceError):
    """Long work stopped because the user asked it to."""


class ModelsNotTrainedError(ForensicFaceError):
    """The shipped model weights are missing."""


class CaseError(ForensicFaceError):
    """A case folder that cannot be created, opened or changed as asked."""


class CaseFormatError(CaseError):
    """``case.json`` or ``audit.log`` is malformed, too large, or of an unknown schema version."""


class EvidenceError(CaseError):
    """An evidence file that cannot be added: missing, unreadable, of an unknown type, or unsafe."""


class CaseLockedError(CaseError):
    """Another process is changing the case and did not finish in time; nothing was changed."""


class CaseIntegrityError(CaseError):
    """The case's record (audit log, its head, case.json) is in doubt: writing is refused so that nothing
    covers the problem; ``case verify`` names it."""


class GalleryError(ForensicFaceError):
    """The gallery database cannot be opened or used as asked."""


def enrol_command(location: str) -> str:
    """The command that enrols people into the gallery at ``location``, for messages saying how to fix one."""
    return f"`forensic-face gallery enroll {location} FOLDER`"


def describe_os_error(exc: OSError) -> str:
    """A file-system failure in words a user can act on (a full disk, a read-only folder, a missing file)."""
    where = exc.filename or "a file"
    advice = {
        errno.ENOSPC: "the disk is full; free some space and try again",
        errno.EDQUOT: "your disk quota is used up; free some space and try again",
        errno.EROFS: "the file system is read-only; work on a copy in a writable folder",
        errno.EACCES: "permission denied; work on a copy in a folder you can write to, or ask for access",
        errno.EPERM: "the operation is not permitted; work on a copy in a folder you can write to",
        errno.ENOENT: "no such file or folder; check the path",
        errno.EISDIR: "is a folder, where a file was expected",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EMFILE: "too many files open; close other programs and try again",
    }.get(exc.errno or -1, exc.strerror or str(exc))
    return (f"{where}: {advice}. The step that failed was not saved; what was saved before it (the case's "
            "evidence, results and log) is unchanged")
