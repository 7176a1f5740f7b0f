"""A ground-truth oracle for `synth_av`: what a clip shows and sounds like.

It reads generated MEDIA only, never tokens: uint8 RGB frames `[t, h, w, 3]`
and a float waveform `[n]` at a sample rate. It inverts the conventions of
`videopoet.data.synth_av` (their one home; its constants are imported here):

Video (`find_objects`). A pixel belongs to an object when it lies at least
half way from the clip's background (its per-channel median) to one of the
`COLOURS` along the straight line between them (the generator draws shapes
anti-aliased: pixel = background + alpha (colour - background)), the colour
being the one whose line passes nearest the pixel; this is robust to the
blur and noise of a decoder, which mostly move pixels along those lines.
Each colour's pixels in a frame are cut into connected components (small
specks dropped); a colour holds as many objects as its most common count of
components over the frames, tracked from frame to frame by their centres
(two objects of one colour are split by k-means where they touch). Per
object, from its frames of (nearly) largest visible area, i.e. unhidden:

  * size: the box side (max of the bounding box's width and height) against
    the mean of the two `SIZE_RADIUS` diameters;
  * shape: two moments of its coverage: the vertical skewness (a triangle,
    apex up: -0.57; the others 0) and a corners measure (the kurtosis along
    the diagonals over that along the axes: a square 0.6, a circle 0);
  * centre: the generator's position (box centre): the centroid, moved up by
    r/3 for a triangle (whose centroid lies r/3 below it);
  * motion: each axis's centre track is fitted by the generator's physics, a
    constant speed folded between the walls (`_fit_axis`: a triangle wave
    with the walls at r and resolution - r, grid search then refinement);
    the initial direction is the sign of the fitted velocity, 0 below
    `DEAD_ZONE` x resolution pixels per frame (so one of the 9 `MOTIONS`);
    the bounces are the frames where the fit crosses a wall (the
    generator's `bounces`: frame t when the wall was touched since t - 1).
    Where the fit is poor (RMS above `FIT_TOLERANCE` x resolution: not
    synth_av's physics), bounces are read from the sign flips of the
    frame-to-frame displacement instead.

Centres on frames where the object shows less than `FULL_AREA` of its
largest area (partly hidden by another) come from the fitted track when the
fit is good; frames where it is not seen at all are NaN.

Audio (`analyze_audio`). Pitches: the amplitude spectrum of the whole clip
(Hann window) at each shape's `PITCH_HZ` fundamental (the shapes' harmonics
never land on another shape's fundamental); a shape is heard when its peak
stands `PITCH_SNR` times above the spectrum around it and above
`PITCH_FLOOR` x the quietest hum the generator makes. Clicks: the wave is
high-passed above the hums' harmonics (3 kHz), its 1 ms RMS envelope
thresholded; an onset at t seconds is the click of a wall contact at t x fps
frames, i.e. the bounce of frame ceil(t x fps).

Scores (one dict of floats per sample; accuracies in [0, 1], PSNR in dB
capped at `PSNR_CAP_DB`; `SCORERS` maps each task to its scorer):

  text_to_video      colour_acc, shape_acc, size_acc, direction_acc,
                     count_acc (found objects matched to the clip's ground
                     truth objects by their attributes).
  text_to_image      colour_acc, shape_acc, size_acc, count_acc.
  image_to_video     psnr_first (first frame vs the input image), count_acc,
                     colour_acc, shape_acc (matched by first-frame position),
                     direction_acc (the caption's direction), motion_acc
                     (moving vs still agrees).
  frame_continuation psnr (and ssim, when `videopoet.eval.metrics` can be
  (and long video)   imported) of the predicted frames, position_error
                     (pixels), position_acc (centre within `POSITION_TOL` x
                     resolution), drift_px_per_s (slope of the position
                     error over time); beyond the truth's frames the truth's
                     trajectories are extended by the generator's physics.
  inpainting,        psnr_inside (the hidden region vs the ground truth),
  outpainting        psnr_outside (the rest vs the input, i.e. the truth).
  stylization        position_error, position_acc (objects follow the
                     structure video's), colour_acc (colours follow the
                     text), shape_acc, count_acc.
  video_to_audio     pitch_acc (the set of pitches heard is the set of shapes
                     seen), pitch_recall, click_within_1 (F1 of clicks vs
                     bounce frames, one frame of slack), click_recall,
                     click_precision.
  audio_to_video     shape_acc (the set of shapes seen is the set of shapes
                     heard), bounce_within_1 (F1 of the video's bounces vs
                     the soundtrack's clicks, one frame of slack).

`truth` is a `synth_av` example (the fields of `synth_av.generate_example`,
as a TFDS record gives them): the clip the request was made from.
"""

import dataclasses
from typing import Callable
import warnings

import numpy as np
from scipy import ndimage
from scipy import optimize
from scipy import signal

from videopoet.data import synth_av

# Objects.
_PALETTE = np.array(
    [synth_av.COLOURS[c] for c in synth_av.COLOUR_NAMES], np.float32
)  # [8, 3]
MIN_ALPHA = 0.5  # The generator's own rule: a pixel half covered is in.
MAX_RESIDUAL = 90.0  # Farther than this from every colour line: no object.
FULL_AREA = 0.85  # Frames showing this much of the largest area: unhidden.
# Shape measures of an object's coverage (see `_shape_measures`): a
# triangle's vertical skewness is -2 sqrt(2) / 5 = -0.57 (0 for the others),
# a square's corners measure 0.6 (a circle's 0); cut half way.
TRIANGLE_SKEW = -0.28
SQUARE_CORNERS = 0.3
# Speeds below this (resolutions per frame) are "still" on that axis; the
# slowest moving axis of synth_av goes SPEED_RANGE[0] / sqrt(2) = 0.021.
DEAD_ZONE = 0.008
FIT_TOLERANCE = 0.03  # Fit RMS (resolutions) above which it is not trusted.
POSITION_TOL = 0.05  # position_acc: centre within this (resolutions).
# Audio.
PITCH_SNR = 4.0
PITCH_FLOOR = 0.3
PITCH_SLACK = 0.02  # Peaks within +-2% of a fundamental count.
CLICK_HIGHPASS_HZ = 3000.0
CLICK_WINDOW_S = 0.001
CLICK_GAP_S = 0.015  # Onsets closer than this are one click.
CLICK_MIN_RMS = 0.02
CLICK_MEDIAN_RATIO = 6.0
PSNR_CAP_DB = 100.0  # As `videopoet.eval.metrics.PSNR_CAP_DB`.

_SIGNS = {
    tuple(int(s) for s in np.sign(np.round(d, 6))): name
    for name, d in synth_av.MOTION_DIRECTIONS.items()
}  # (sign dx, sign dy) -> motion name.


@dataclasses.dataclass(frozen=True)
class FoundObject:
  """One object seen in a video.

  Attributes:
    colour: a name of `synth_av.COLOURS`.
    shape: a name of `synth_av.SHAPES`.
    size: a name of `synth_av.SIZES`.
    motion: a name of `synth_av.MOTIONS` (initial direction); None for a
      single image.
    centres: [T, 2] (x, y) box centre per frame, the generator's position
      convention; NaN where the object is not seen.
    areas: [T] pixels it covers per frame.
    bounces: [T] bool: a wall was touched between frames t - 1 and t.
    velocity: (dx, dy) initial velocity, pixels per frame, from the fit.
    fit_rms: RMS (pixels) of the bouncing-track fit over unhidden frames.
    skew: the vertical skewness behind `shape` (triangle: -0.57).
    corners: the corners measure behind `shape` (square: 0.6).
    extent: the box side (pixels) behind `size`.
  """

  colour: str
  shape: str
  size: str
  motion: str | None
  centres: np.ndarray
  areas: np.ndarray
  bounces: np.ndarray
  velocity: tuple[float, float]
  fit_rms: float
  skew: float
  corners: float
  extent: float


def _as_video(video) -> np.ndarray:
  """uint8-valued [T, H, W, 3] (a single image [H, W, 3] gets T = 1)."""
  video = np.asarray(video)
  if video.ndim == 3:
    video = video[None]
  if video.ndim != 4 or video.shape[-1] != 3:
    raise ValueError(f"video must be [t, h, w, 3] RGB, got {video.shape}")
  if video.dtype.kind == "f" and video.size and video.max() <= 1.0:
    raise ValueError("video must hold 0..255 values (uint8), not [0, 1]")
  return video.astype(np.float32)


def _background(video: np.ndarray) -> np.ndarray:
  """The clip's background colour [3]: objects cover a minority of it."""
  return np.median(video.reshape(-1, 3), axis=0)


def _alpha(video: np.ndarray, background: np.ndarray, colour: int):
  """Coverage [T, H, W] in [0, 1] by `colour` over the background."""
  d = _PALETTE[colour] - background
  return np.clip((video - background) @ d / (d @ d), 0.0, 1.0)


def _label_pixels(video: np.ndarray, background: np.ndarray) -> np.ndarray:
  """Palette index per pixel, -1 for background: [T, H, W] int."""
  background = background.astype(np.float32)
  q = video.reshape(-1, 3) - background  # [M, 3]
  d = _PALETTE - background  # [8, 3]
  dd = (d * d).sum(-1)  # [8]
  qd = q @ d.T  # [M, 8]
  alpha = np.clip(qd / dd, 0.0, 1.2)
  resid = (q * q).sum(-1, keepdims=True) - 2 * alpha * qd + alpha**2 * dd
  best = resid.argmin(-1)  # [M]
  rows = np.arange(len(best))
  keep = (alpha[rows, best] >= MIN_ALPHA) & (
      resid[rows, best] <= MAX_RESIDUAL**2
  )
  return np.where(keep, best, -1).reshape(video.shape[:3])


def _min_area(resolution: int) -> float:
  """Specks below half the smallest visible piece of a small triangle."""
  r = synth_av.SIZE_RADIUS["small"] * resolution
  return max(4.0, 0.5 * synth_av.MIN_VISIBLE * 2 * r * r)


def _components(mask: np.ndarray, min_area: float) -> list[np.ndarray]:
  labels, n = ndimage.label(mask)
  if not n:
    return []
  areas = np.bincount(labels.ravel())[1:]
  return [labels == k + 1 for k in range(n) if areas[k] >= min_area]


def _centroid(mask: np.ndarray) -> np.ndarray:
  ys, xs = np.nonzero(mask)
  return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def _split(masks: list[np.ndarray], prev: np.ndarray) -> list:
  """Pixels of `masks` in len(prev) groups, group k nearest centre prev[k]."""
  k = len(prev)
  if len(masks) == k:  # One component each: match them to the centres.
    cents = np.stack([_centroid(m) for m in masks])
    cost = ((cents[:, None] - prev[None]) ** 2).sum(-1)
    rows, cols = optimize.linear_sum_assignment(cost)
    out = [None] * k
    for r, c in zip(rows, cols):
      out[c] = masks[r]
    return out
  union = np.logical_or.reduce(masks)
  ys, xs = np.nonzero(union)
  pts = np.stack([xs + 0.5, ys + 0.5], -1)
  centres = prev.copy()
  for _ in range(8):  # k-means from the previous centres.
    group = ((pts[:, None] - centres[None]) ** 2).sum(-1).argmin(-1)
    for j in range(k):
      if (group == j).any():
        centres[j] = pts[group == j].mean(0)
  out = []
  for j in range(k):
    m = np.zeros_like(union)
    m[ys[group == j], xs[group == j]] = True
    out.append(m if m.any() else None)
  return out


def _tracks(
    labels: np.ndarray, colour: int, min_area: float
) -> tuple[list, np.ndarray]:
  """Per object of `colour`: its mask per frame (None where unseen).

  Also returns [T] bool: frames whose components are the objects one to one
  (elsewhere objects of the colour touch, and their split is a guess).
  """
  frames = [
      _components(labels[t] == colour, min_area) for t in range(len(labels))
  ]
  counts = np.array([len(c) for c in frames])
  values, freq = np.unique(counts, return_counts=True)
  k = int(values[freq == freq.max()].max())  # Most common; ties: more.
  clean = counts == k
  if k == 0:
    return [], clean
  if k == 1:
    return [[np.logical_or.reduce(c) if c else None for c in frames]], clean
  anchor = int(np.argmax(counts == k))
  tracks = [[None] * len(frames) for _ in range(k)]
  first = [frames[anchor][j] for j in range(k)]
  cents = np.stack([_centroid(m) for m in first])
  for j in range(k):
    tracks[j][anchor] = first[j]
  for order in (range(anchor + 1, len(frames)), range(anchor - 1, -1, -1)):
    prev = cents.copy()
    for t in order:
      if not frames[t]:
        continue
      parts = _split(frames[t], prev)
      for j, m in enumerate(parts):
        tracks[j][t] = m
        if m is not None:
          prev[j] = _centroid(m)
  return tracks, clean


def _tri(u: np.ndarray, span: float) -> np.ndarray:
  """u folded into [0, span] (a triangle wave): motion between walls."""
  return span - np.abs(np.mod(u, 2 * span) - span)


def _fit_axis(
    c: np.ndarray, w: np.ndarray, radius: float, resolution: int
) -> tuple[float, float, np.ndarray, np.ndarray]:
  """Fits c[t] ~ radius + fold(u0 + v t) between the walls (v >= 0).

  Returns:
    signed initial velocity (pixels per frame), weighted RMS (pixels), the
    fitted track [T] and the bounce flags [T] bool.
  """
  span = resolution - 2 * radius
  t = np.arange(len(c), dtype=np.float64)
  used = w > 0  # Frames without weight cost nothing: leave them out.
  tu, cu, wu = (x[used].astype(np.float32) for x in (t, c, w))

  def grid(vs, us):
    u = us[None, :, None] + vs[:, None, None] * tu  # [V, U, T']
    err = ((radius + _tri(u, span) - cu) ** 2 * wu).sum(-1)
    i, j = np.unravel_index(np.argmin(err), err.shape)
    return float(vs[i]), float(us[j]), float(err[i, j])

  # A coarse grid over speeds up to 0.1 resolution per frame and every
  # start, then a fine one around its best.
  dv, du = 0.0016 * resolution, 0.008 * resolution
  v, u0, _ = grid(
      np.arange(0.0, 0.1 * resolution + dv, dv, dtype=np.float32),
      np.arange(0.0, 2 * span, du, dtype=np.float32),
  )
  v, u0, err = grid(
      np.clip(v + np.linspace(-dv, dv, 21, dtype=np.float32), 0, None),
      np.mod(u0 + np.linspace(-du, du, 21, dtype=np.float32), 2 * span),
  )
  rms = float(np.sqrt(err / max(w.sum(), 1e-9)))
  u = u0 + v * t
  track = radius + _tri(u, span)
  if v < DEAD_ZONE * resolution:
    return 0.0, rms, track, np.zeros(len(c), bool)
  laps = np.floor(u / span)
  bounces = np.zeros(len(c), bool)
  bounces[1:] = laps[1:] != laps[:-1]
  sign = 1.0 if np.mod(u0, 2 * span) < span else -1.0
  return sign * v, rms, track, bounces


def _sign_flips(c: np.ndarray, resolution: int) -> np.ndarray:
  """Bounce frames [T] bool where the displacement's sign flips."""
  out = np.zeros(len(c), bool)
  d = np.diff(c)
  if not np.isfinite(d).any():
    return out
  speed = np.nanmedian(np.abs(d))
  if speed < DEAD_ZONE * resolution:
    return out
  s = np.where(np.abs(d) >= 0.3 * speed, np.sign(d), 0.0)
  idx = np.nonzero(np.isfinite(d) & (s != 0))[0]
  for j, k in zip(idx[:-1], idx[1:]):
    if s[j] == s[k]:
      continue
    # The turn is in the interval that moves least (the one between, if
    # any); its end frame is the bounce's.
    if k > j + 1:
      turn = (j + k) // 2
    else:
      turn = j if abs(d[j]) < abs(d[k]) else k
    out[turn + 1] = True
  return out


def _shape_measures(weights: np.ndarray) -> tuple[float, float]:
  """(vertical skewness, corners) of a coverage image [H, W].

  corners: the mean kurtosis of the coverage projected on the two diagonals
  minus that projected on the two axes. A square's projection on an axis is
  uniform (kurtosis 1.8), on a diagonal triangular (2.4); a circle's is the
  same (2.0) in every direction. Moments of the summed coverage are what a
  blur changes least (it adds only a small variance).
  """
  ys, xs = np.nonzero(weights > 0)
  a = weights[ys, xs]
  mass = a.sum()
  x = xs - (xs * a).sum() / mass
  y = ys - (ys * a).sum() / mass

  def standardized(u):  # (skewness, kurtosis)
    var = (a * u * u).sum() / mass
    return (a * u**3).sum() / mass / var**1.5, (a * u**4).sum() / mass / var**2

  with np.errstate(divide="ignore", invalid="ignore"):  # A line: NaN.
    skew, kurt_y = standardized(y)
    _, kurt_x = standardized(x)
    _, kurt_d1 = standardized((x + y) / np.sqrt(2))
    _, kurt_d2 = standardized((x - y) / np.sqrt(2))
  return float(skew), float((kurt_d1 + kurt_d2 - kurt_x - kurt_y) / 2)


def _classify_shape(skew: float, corners: float) -> str:
  if skew < TRIANGLE_SKEW:
    return "triangle"
  return "square" if corners > SQUARE_CORNERS else "circle"


def _describe(
    masks: list,
    clean: np.ndarray,
    colour: int,
    alpha: np.ndarray,
    others: np.ndarray,
) -> FoundObject:
  """The attributes and track of one object from its per-frame masks.

  Args:
    masks: [T] its pixels per frame (None where unseen).
    clean: [T] bool: frames whose mask is surely this object's alone.
    colour: its palette index.
    alpha: [T, H, W] coverage by its colour (`_alpha`).
    others: [T, H, W] bool: pixels of objects of other colours.

  The shape measures weigh the pixels around the mask by their coverage.
  """
  resolution = alpha.shape[2]
  num_frames = len(masks)
  areas = np.array([m.sum() if m is not None else 0 for m in masks], float)
  cents = np.full((num_frames, 2), np.nan)
  measures = np.full((num_frames, 2), np.nan)
  extents = np.full(num_frames, np.nan)
  for t, m in enumerate(masks):
    if m is None:
      continue
    ys, xs = np.nonzero(m)
    w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    cents[t] = xs.mean() + 0.5, ys.mean() + 0.5
    around = ndimage.binary_dilation(m, iterations=2) & ~others[t]
    if len(xs) > 2:
      measures[t] = _shape_measures(np.where(around, alpha[t], 0.0))
    extents[t] = max(w, h)
  if not (clean & (areas > 0)).any():
    clean = areas > 0
  full = clean & (areas >= FULL_AREA * areas[clean].max())
  with warnings.catch_warnings():  # All NaN (specks of <= 2 pixels): NaN.
    warnings.simplefilter("ignore", RuntimeWarning)
    skew, corners = np.nanmedian(measures[full], axis=0)
  extent = float(np.median(extents[full]))
  radii = {k: f * resolution for k, f in synth_av.SIZE_RADIUS.items()}
  size = "small" if extent < sum(radii.values()) else "large"
  shape = _classify_shape(skew, corners)
  radius = radii[size]
  if shape == "triangle":
    cents[:, 1] -= radius / 3
  seen = np.isfinite(cents[:, 0])
  if num_frames < 2 or seen.sum() < 2:
    return FoundObject(
        synth_av.COLOUR_NAMES[colour], shape, size, None, cents, areas,
        np.zeros(num_frames, bool), (0.0, 0.0), 0.0, skew, corners, extent,
    )  # fmt: skip
  weight = (full & seen).astype(float)
  if weight.sum() < 3:
    weight = seen.astype(float)
  fits = [_fit_axis(cents[:, a], weight, radius, resolution) for a in (0, 1)]
  velocity = tuple(float(f[0]) for f in fits)
  rms = float(np.hypot(fits[0][1], fits[1][1]))
  good = rms <= FIT_TOLERANCE * resolution
  if good:
    bounces = fits[0][3] | fits[1][3]
    hidden = seen & ~full
    for a in (0, 1):
      cents[hidden, a] = fits[a][2][hidden]
  else:
    bounces = _sign_flips(cents[:, 0], resolution) | _sign_flips(
        cents[:, 1], resolution
    )
  signs = tuple(int(np.sign(v)) for v in velocity)
  return FoundObject(
      synth_av.COLOUR_NAMES[colour], shape, size, _SIGNS[signs], cents,
      areas, bounces, velocity, rms, skew, corners, extent,
  )  # fmt: skip


def find_objects(video) -> list[FoundObject]:
  """The objects of a synth_av-like video [T, H, W, 3] (or image [H, W, 3]).

  Returns them by colour (palette order), then left to right at their first
  sighting.
  """
  video = _as_video(video)
  resolution = video.shape[2]
  background = _background(video)
  labels = _label_pixels(video, background)
  min_area = _min_area(resolution)
  found = []
  for colour in np.unique(labels[labels >= 0]):
    tracks, clean = _tracks(labels, int(colour), min_area)
    alpha = _alpha(video, background, int(colour))
    others = (labels >= 0) & (labels != colour)
    objs = [_describe(m, clean, int(colour), alpha, others) for m in tracks]
    first = lambda o: o.centres[np.isfinite(o.centres[:, 0])][0, 0]
    found += sorted(objs, key=first)
  return found


# ------------------------------------------------------------------- audio


def _quietest_pitch_amplitude() -> float:
  """The smallest fundamental amplitude a synth_av hum has."""
  return min(
      synth_av.HUM_GAIN[size] * synth_av.HARMONICS[s][0]
      / sum(synth_av.HARMONICS[s])
      for s in synth_av.SHAPES
      for size in synth_av.SIZES
  )  # fmt: skip


def analyze_audio(wave, sample_rate: int, fps: float) -> dict:
  """The pitches and clicks of a synth_av-like soundtrack.

  Args:
    wave: [n] float waveform (in [-1, 1]).
    sample_rate: its samples per second.
    fps: the video's frames per second (for `click_frames`).

  Returns:
    A dict: `shapes` (tuple of the `synth_av.SHAPES` whose pitch is heard, in
    that order), `pitch_amplitude` ({shape: amplitude of the peak at its
    fundamental}), `click_times` ([k] float onsets in seconds) and
    `click_frames` ([k] int: the frame whose bounce flag each click marks).
  """
  wave = np.asarray(wave, np.float64).reshape(-1)
  n = len(wave)
  window = np.hanning(n)
  spectrum = 2 * np.abs(np.fft.rfft(wave * window)) / window.sum()
  freqs = np.fft.rfftfreq(n, 1 / sample_rate)
  floor = PITCH_FLOOR * _quietest_pitch_amplitude()
  amplitude, heard = {}, []
  for shape in synth_av.SHAPES:
    f0 = synth_av.PITCH_HZ[shape]
    near = np.abs(freqs - f0) <= PITCH_SLACK * f0
    around = (np.abs(freqs - f0) <= 0.2 * f0) & (
        np.abs(freqs - f0) > 2 * PITCH_SLACK * f0
    )
    peak = float(spectrum[near].max()) if near.any() else 0.0
    amplitude[shape] = peak
    if peak >= floor and peak >= PITCH_SNR * np.median(spectrum[around]):
      heard.append(shape)
  cutoff = min(CLICK_HIGHPASS_HZ, 0.35 * sample_rate)
  sos = signal.butter(8, cutoff, "highpass", fs=sample_rate, output="sos")
  high = signal.sosfiltfilt(sos, wave) if n > 60 else np.zeros(n)
  hop = max(1, int(CLICK_WINDOW_S * sample_rate))
  frames = len(high) // hop
  env = np.sqrt((high[: frames * hop].reshape(frames, hop) ** 2).mean(-1))
  threshold = max(CLICK_MIN_RMS, CLICK_MEDIAN_RATIO * np.median(env))
  onsets, last = [], -np.inf
  for i in np.nonzero(env > threshold)[0]:
    time = (i + 0.5) * hop / sample_rate  # Its window's centre.
    if time - last > CLICK_GAP_S:
      onsets.append(time)
    last = time
  times = np.array(onsets)
  click_frames = np.ceil(times * fps - 1e-6).astype(int)
  return {
      "shapes": tuple(heard),
      "pitch_amplitude": amplitude,
      "click_times": times,
      "click_frames": click_frames,
  }


# ------------------------------------------------------------------ truth


def truth_objects(truth) -> list[dict]:
  """The objects of a synth_av example as dicts of names and tracks."""
  out = []
  for n in np.nonzero(np.asarray(truth["object_mask"]))[0]:
    out.append(
        {
            "colour": synth_av.COLOUR_NAMES[int(truth["colour"][n])],
            "shape": synth_av.SHAPES[int(truth["shape"][n])],
            "size": synth_av.SIZES[int(truth["size"][n])],
            "motion": synth_av.MOTIONS[int(truth["motion"][n])],
            "positions": np.asarray(truth["positions"], np.float64)[:, n],
            "velocity": np.asarray(truth["velocity"], np.float64)[n],
            "bounces": np.asarray(truth["bounces"])[:, n].astype(bool),
        }
    )
  return out


def extend_positions(truth, num_frames: int) -> np.ndarray:
  """The truth's trajectories over `num_frames` frames: [num_frames, O, 2].

  The generator's physics (`synth_av._trajectory`) run on from each object's
  first position and initial velocity: the ground truth of a long video.
  """
  video = np.asarray(truth["video"])
  cfg = synth_av.SynthAVConfig(
      resolution=video.shape[2], num_frames=max(num_frames, 2)
  )
  tracks = []
  for obj in truth_objects(truth):
    radius = synth_av.SIZE_RADIUS[obj["size"]] * cfg.resolution
    start = obj["positions"][0]
    # pylint: disable-next=protected-access
    positions, _, _ = synth_av._trajectory(start, obj["velocity"], radius, cfg)
    tracks.append(positions[:num_frames])
  return np.stack(tracks, axis=1)


# ---------------------------------------------------------------- helpers


def psnr(a, b, mask=None, cap_db: float = PSNR_CAP_DB) -> float:
  """Mean over frames of the per-frame PSNR (dB, uint8 peak 255), capped.

  `mask` ([h, w] or [t, h, w] bool, True = counted) limits it to a region;
  frames without a counted pixel are skipped (NaN if none is left).
  """
  a, b = _as_video(a), _as_video(b)
  if a.shape != b.shape:
    raise ValueError(f"psnr: shapes {a.shape} and {b.shape} differ")
  if mask is None:
    mask = np.ones(a.shape[:3], bool)
  mask = np.broadcast_to(np.asarray(mask, bool), a.shape[:3])
  sq = ((a - b) ** 2).sum(-1)  # [T, H, W]
  counted = mask.sum((1, 2)) * 3
  values = []
  for t in np.nonzero(counted)[0]:
    mse = sq[t][mask[t]].sum() / counted[t]
    values.append(cap_db if mse == 0 else 10 * np.log10(255.0**2 / mse))
  return float(np.minimum(np.mean(values), cap_db)) if values else np.nan


def _pixel_mask(mask, shape: tuple[int, int]) -> np.ndarray:
  """A token-grid mask [h', w'] scaled up to pixels [h, w] (or as is)."""
  mask = np.asarray(mask, bool)
  h, w = mask.shape[-2:]
  if (h, w) == tuple(shape):
    return mask
  if shape[0] % h or shape[1] % w:
    raise ValueError(f"mask {mask.shape} does not tile frames {shape}")
  return np.repeat(np.repeat(mask, shape[0] // h, -2), shape[1] // w, -1)


def _match_attributes(found, objects) -> list:
  """For each truth object its found object (or None), by best agreement."""
  if not found or not objects:
    return [None] * len(objects)
  keys = (("colour", 8), ("shape", 4), ("size", 2), ("motion", 1))
  score = np.array([
      [sum(w for k, w in keys if getattr(f, k) == o[k]) for f in found]
      for o in objects
  ])  # fmt: skip
  rows, cols = optimize.linear_sum_assignment(-score)
  out = [None] * len(objects)
  for r, c in zip(rows, cols):
    out[r] = found[c]
  return out


def _match_positions(found, positions: np.ndarray, frames=None) -> list:
  """For each truth track [T, O, 2] its found object, by mean distance."""
  objects = positions.shape[1]
  if not found:
    return [None] * objects
  frames = slice(None) if frames is None else frames
  cost = np.full((objects, len(found)), 1e6)
  for i in range(objects):
    for j, f in enumerate(found):
      n = min(len(f.centres), len(positions))
      d = np.linalg.norm(
          f.centres[:n][frames] - positions[:n][frames, i], axis=-1
      )
      if np.isfinite(d).any():
        cost[i, j] = np.nanmean(d)
  rows, cols = optimize.linear_sum_assignment(cost)
  out = [None] * objects
  for r, c in zip(rows, cols):
    out[r] = found[c]
  return out


def _agree(matched, objects, key: str) -> float:
  return float(
      np.mean([
          m is not None and getattr(m, key) == o[key]
          for m, o in zip(matched, objects)
      ])
  )  # fmt: skip


def _f1_within(found: np.ndarray, wanted: np.ndarray, slack: int = 1):
  """(F1, recall, precision) of frame sets matched one to one within slack."""
  found, wanted = np.unique(found), np.unique(wanted)
  if not len(found) and not len(wanted):
    return 1.0, 1.0, 1.0
  if not len(found) or not len(wanted):
    return 0.0, float(not len(wanted)), float(not len(found))
  far = np.abs(wanted[:, None] - found[None]) > slack
  rows, cols = optimize.linear_sum_assignment(far.astype(float))
  hits = int((~far[rows, cols]).sum())
  recall, precision = hits / len(wanted), hits / len(found)
  f1 = 2 * hits / (len(wanted) + len(found))
  return f1, recall, precision


def _bounce_frames(objects_bounces) -> np.ndarray:
  """Frames where any object bounced."""
  flags = np.zeros(0, bool)
  for b in objects_bounces:
    b = np.asarray(b, bool)
    flags = b if not len(flags) else (flags | b)
  return np.nonzero(flags)[0]


# ------------------------------------------------------------------ tasks


def score_text_to_video(video, truth) -> dict:
  """Attributes of the found objects against the clip's objects."""
  objects = truth_objects(truth)
  found = find_objects(video)
  matched = _match_attributes(found, objects)
  return {
      "colour_acc": _agree(matched, objects, "colour"),
      "shape_acc": _agree(matched, objects, "shape"),
      "size_acc": _agree(matched, objects, "size"),
      "direction_acc": _agree(matched, objects, "motion"),
      "count_acc": float(len(found) == len(objects)),
  }


def score_text_to_image(image, truth) -> dict:
  """As text_to_video on one frame ([h, w, 3] or [1, h, w, 3]): no motion."""
  scores = score_text_to_video(image, truth)
  del scores["direction_acc"]
  return scores


def score_image_to_video(video, truth) -> dict:
  """The first frame against the input image (the truth's first frame), the
  objects matched by first-frame position, their motion against the text."""
  video = np.asarray(video)
  objects = truth_objects(truth)
  found = find_objects(video)
  first = np.stack([o["positions"] for o in objects], 1)  # [T, O, 2]
  matched = _match_positions(found, first, frames=slice(0, 1))
  moving = [
      m is not None and (m.motion != "still") == (o["motion"] != "still")
      for m, o in zip(matched, objects)
  ]
  return {
      "psnr_first": psnr(video[:1], np.asarray(truth["video"])[:1]),
      "count_acc": float(len(found) == len(objects)),
      "colour_acc": _agree(matched, objects, "colour"),
      "shape_acc": _agree(matched, objects, "shape"),
      "direction_acc": _agree(matched, objects, "motion"),
      "motion_acc": float(np.mean(moving)),
  }


def _ssim_or_none(a: np.ndarray, b: np.ndarray):
  try:
    from videopoet.eval import metrics  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return metrics.ssim(a, b)


def score_continuation(
    video, truth, frames_in: int, fps: float, ssim: bool = True
) -> dict:
  """Frames after the first `frames_in` against the truth (any length).

  Args:
    video: [T, H, W, 3] the given frames then the predicted ones; T may pass
      the truth's length (long video): positions are then compared with
      the truth's trajectories run on (`extend_positions`), pixels only
      where the truth has frames.
    truth: the synth_av example the request was made from.
    frames_in: how many leading frames were given.
    fps: frames per second (for drift_px_per_s).
    ssim: also SSIM (via `videopoet.eval.metrics`, when importable).

  Returns:
    psnr, [ssim], position_error, position_acc, drift_px_per_s.
  """
  video = np.asarray(video)
  real = np.asarray(truth["video"])
  num_frames, resolution = len(video), video.shape[2]
  scores = {}
  overlap = min(num_frames, len(real))
  if overlap > frames_in:
    scores["psnr"] = psnr(video[frames_in:overlap], real[frames_in:overlap])
    if ssim:
      value = _ssim_or_none(video[frames_in:overlap], real[frames_in:overlap])
      if value is not None:
        scores["ssim"] = value
  positions = extend_positions(truth, num_frames)  # [T, O, 2]
  found = find_objects(video)
  matched = _match_positions(found, positions)
  errors = np.full((num_frames, positions.shape[1]), np.inf)
  for i, m in enumerate(matched):
    if m is not None:
      d = np.linalg.norm(m.centres - positions[:, i], axis=-1)
      errors[:, i] = np.where(np.isfinite(d), d, np.inf)
  errors = errors[frames_in:]
  # Lost objects count as one resolution off in the mean error.
  capped = np.minimum(errors, resolution)
  per_frame = capped.mean(1)
  seconds = np.arange(frames_in, num_frames) / fps
  drift = (
      float(np.polyfit(seconds, per_frame, 1)[0]) if len(seconds) > 1 else 0.0
  )
  scores.update(
      {
          "position_error": float(capped.mean()),
          "position_acc": float((errors <= POSITION_TOL * resolution).mean()),
          "drift_px_per_s": drift,
      }
  )
  return scores


def score_painting(video, truth, mask) -> dict:
  """Inside the hidden region against the ground truth, outside against the
  input (which is the ground truth there).

  `mask`: True where hidden; [h, w], [t, h, w], or the token grid [h', w']
  (tiled up to the frame).
  """
  video, real = np.asarray(video), np.asarray(truth["video"])
  hidden = _pixel_mask(mask, video.shape[1:3])
  return {
      "psnr_inside": psnr(video, real, hidden),
      "psnr_outside": psnr(video, real, ~hidden),
  }


def score_stylization(video, truth, text_truth=None) -> dict:
  """Objects follow the structure clip's (`truth`) tracks; their colours
  follow the text's objects (`text_truth`, default: the same clip), object
  n of the structure with object n of the text."""
  video = np.asarray(video)
  resolution = video.shape[2]
  objects = truth_objects(truth)
  text_objects = truth_objects(text_truth if text_truth is not None else truth)
  positions = np.stack([o["positions"] for o in objects], 1)
  found = find_objects(video)
  matched = _match_positions(found, positions)
  errors = []
  for i, m in enumerate(matched):
    d = np.full(len(positions), float(resolution))
    if m is not None:
      d = np.linalg.norm(m.centres - positions[: len(m.centres), i], axis=-1)
      d = np.where(np.isfinite(d), np.minimum(d, resolution), resolution)
    errors.append(d)
  errors = np.stack(errors)
  colours = text_objects + [None] * (len(objects) - len(text_objects))
  return {
      "position_error": float(errors.mean()),
      "position_acc": float((errors <= POSITION_TOL * resolution).mean()),
      "colour_acc": float(np.mean([
          m is not None and c is not None and m.colour == c["colour"]
          for m, c in zip(matched, colours)
      ])),  # fmt: skip
      "shape_acc": _agree(matched, objects, "shape"),
      "count_acc": float(len(found) == len(objects)),
  }


def score_video_to_audio(wave, truth, sample_rate: int, fps: float) -> dict:
  """The soundtrack's pitches against the shapes seen, its clicks against
  the bounces."""
  heard = analyze_audio(wave, sample_rate, fps)
  objects = truth_objects(truth)
  seen = {o["shape"] for o in objects}
  f1, recall, precision = _f1_within(
      heard["click_frames"], _bounce_frames(o["bounces"] for o in objects)
  )
  return {
      "pitch_acc": float(set(heard["shapes"]) == seen),
      "pitch_recall": float(
          np.mean([o["shape"] in heard["shapes"] for o in objects])
      ),
      "click_within_1": f1,
      "click_recall": recall,
      "click_precision": precision,
  }


def score_audio_to_video(video, truth) -> dict:
  """The video's shapes against the pitches heard (the truth's shapes), its
  bounces against the clicks (the truth's bounce frames)."""
  objects = truth_objects(truth)
  found = find_objects(video)
  f1, _, _ = _f1_within(
      _bounce_frames(f.bounces for f in found),
      _bounce_frames(o["bounces"] for o in objects),
  )
  return {
      "shape_acc": float(
          {f.shape for f in found} == {o["shape"] for o in objects}
      ),
      "bounce_within_1": f1,
  }


# task -> scorer(generated, truth, **conditioning); `generated` holds the
# sample's "video" and/or "audio".
SCORERS: dict[str, Callable[..., dict]] = {
    "text_to_video": lambda g, t: score_text_to_video(g["video"], t),
    "text_to_image": lambda g, t: score_text_to_image(g["video"], t),
    "image_to_video": lambda g, t: score_image_to_video(g["video"], t),
    "frame_continuation": lambda g, t, frames_in, fps, **kw: (
        score_continuation(g["video"], t, frames_in, fps, **kw)
    ),
    "inpainting": lambda g, t, mask: score_painting(g["video"], t, mask),
    "outpainting": lambda g, t, mask: score_painting(g["video"], t, mask),
    "stylization": lambda g, t, text_truth=None: score_stylization(
        g["video"], t, text_truth
    ),
    "video_to_audio": lambda g, t, sample_rate, fps: score_video_to_audio(
        g["audio"], t, sample_rate, fps
    ),
    "audio_to_video": lambda g, t: score_audio_to_video(g["video"], t),
}


def score(task: str, generated: dict, truth, **conditioning) -> dict:
  """`SCORERS[task](generated, truth, **conditioning)`."""
  if task not in SCORERS:
    raise KeyError(f"no oracle for task {task!r}; scored: {', '.join(SCORERS)}")
  return SCORERS[task](generated, truth, **conditioning)
