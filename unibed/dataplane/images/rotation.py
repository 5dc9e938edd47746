"""A copy turned by a few degrees on its own canvas: its angle, read from the corners.

Turning a w x h picture by t degrees on a w x h canvas leaves four right triangles of fill
colour (black, usually) in the corners. In the top-left one the turned picture's edge runs
from (a, 0) on the top row to (0, b) on the left column, at t degrees to the canvas side:
tan t = min(a, b) / max(a, b), counter-clockwise when the run along the top row is the
longer. The four corners must agree (the same fill, the same angle), which a photograph
with dark corners does not do by chance.
"""

from __future__ import annotations

import math

import numpy as np

# Corner runs: pixels within this of the corner's colour, ...
FILL_TOLERANCE = 24
# ... angles the reading is trusted for (below MIN, the triangles are a few pixels) ...
MIN_DEGREES, MAX_DEGREES = 1.0, 10.0
# ... and how far the four corners' angles may differ.
AGREEMENT_DEGREES = 0.75


def turn_angle(gray: np.ndarray) -> float | None:
    """The counter-clockwise angle (degrees) that turned the picture inside `gray`'s canvas,
    or None when its corners are not four fill-coloured triangles of one angle."""
    height, width = gray.shape
    colour = gray[0, 0]
    corners = (gray, gray[:, ::-1], gray[::-1, :], gray[::-1, ::-1])
    if any(abs(c[0, 0] - colour) > FILL_TOLERANCE for c in corners):
        return None
    angles = []
    for index, corner in enumerate(corners):
        along_row = _run(corner[0], colour, width // 2)
        along_column = _run(corner[:, 0], colour, height // 2)
        if min(along_row, along_column) < 2:
            return None
        degrees = math.degrees(math.atan(min(along_row, along_column) / max(along_row, along_column)))
        # top-left and bottom-right: the top row's run is the longer one for a
        # counter-clockwise turn; the two mirrored corners the other way round
        counter_clockwise = (along_row > along_column) == (index in (0, 3))
        angles.append(degrees if counter_clockwise else -degrees)
    if max(angles) - min(angles) > AGREEMENT_DEGREES:
        return None
    angle = float(np.mean(angles))
    return angle if MIN_DEGREES <= abs(angle) <= MAX_DEGREES else None


def _run(line: np.ndarray, colour: float, limit: int) -> int:
    """How many leading values of `line` (at most `limit`) lie within the tolerance of `colour`."""
    off = np.flatnonzero(np.abs(line[:limit] - colour) > FILL_TOLERANCE)
    return int(off[0]) if len(off) else limit


def fitting_scale(width: int, height: int, degrees: float) -> float:
    """The largest k such that the centred (k w) x (k h) rectangle of a w x h picture turned
    by `degrees` on its canvas (or turned back) holds no corner fill."""
    angle = math.radians(abs(degrees))
    cos, sin = math.cos(angle), math.sin(angle)
    return min(width / (width * cos + height * sin), height / (width * sin + height * cos))
