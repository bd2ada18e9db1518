"""The shot-cut statistic of vision.track (1 - correlation of consecutive frames' 32x24 grey thumbnails): how high it
goes within a shot and how low between shots, for TrackerConfig.cut_threshold.

Within a shot: the tracking test's clip (two faces crossing, frame to frame; a face vanishing at once), a pan
over a picture at 8 and 24 px a frame, the light halved or raised by 40 levels, sensor noise of sigma 20. Between
shots: every pair of distinct pictures among scikit-image's bundled ones, resized to 640x480.

    .venv/bin/python -m research.cut_statistic          # a few seconds
"""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np

from forensic_face.vision.frames import to_grey
from forensic_face.vision.synthclip import crossing_shots, generate_clip
from forensic_face.vision.track import frame_change, frame_thumbnail

PICTURES = ("coffee", "rocket", "astronaut", "chelsea", "camera", "brick", "grass", "gravel", "coins", "page", "text",
            "moon", "horse", "clock", "hubble_deep_field", "immunohistochemistry", "retina", "logo")


def thumb(image: np.ndarray) -> np.ndarray:
    return frame_thumbnail(to_grey(image))


def picture(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    img = (img * 255 if img.dtype == bool else img).astype(np.uint8)
    img = img[:, :, :3] if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA)


def within_shot() -> dict[str, float]:
    rng = np.random.default_rng(0)
    frames = [f for f, _ in generate_clip(crossing_shots())]  # the cut is at frame 100, the face leaves after 149
    change = [frame_change(thumb(a.image), thumb(b.image)) for a, b in itertools.pairwise(frames)]
    big = cv2.resize(picture("coffee"), (960, 720))
    pan = {step: max(frame_change(thumb(big[100:580, x:x + 640]), thumb(big[100:580, x + step:x + step + 640]))
                     for x in range(0, 300, 30)) for step in (8, 24)}
    still = big[100:580, :640]
    noisy = [np.clip(still + rng.normal(0, 20, still.shape), 0, 255).astype(np.uint8) for _ in range(2)]
    return {"two faces crossing": max(change[:99]), "a face vanishing at once": change[149],
            "pan 8 px/frame": pan[8], "pan 24 px/frame": pan[24],
            "light x0.5": frame_change(thumb(still), thumb((still * 0.5).astype(np.uint8))),
            "light +40": frame_change(thumb(still), thumb(np.clip(still.astype(int) + 40, 0, 255).astype(np.uint8))),
            "noise sigma 20": frame_change(thumb(noisy[0]), thumb(noisy[1]))}


def between_shots() -> list[tuple[float, str, str]]:
    thumbs = {n: thumb(picture(n)) for n in PICTURES}
    return sorted((frame_change(thumbs[a], thumbs[b]), a, b) for a, b in itertools.combinations(PICTURES, 2))


def main() -> int:
    inside = within_shot()
    cuts = between_shots()
    print(json.dumps({"within_shot": {k: round(v, 3) for k, v in inside.items()},
                      "between_shots": {"pairs": len(cuts), "lowest": [(round(v, 3), a, b) for v, a, b in cuts[:5]],
                                        "share_over_0.4": round(float(np.mean([v > 0.4 for v, _, _ in cuts])), 4)}},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
