"""`synth_av`: coloured shapes that move, bounce and hum (pure numpy).

Every example is a short clip of 1..`max_objects` shapes (circle, square,
triangle) in one of `COLOURS`, small or large, moving at a constant speed in
one of the `MOTIONS` directions over a dark background and bouncing off the
walls, with a soundtrack tied to what is seen: each shape hums at its own
pitch and timbre (louder when large), and every wall bounce makes a click.
`generate_example(cfg, split, index)` is a pure function of
`(cfg.seed, split, index)`, so any example can be regenerated on its own.

Geometry. Pixel (row i, column j) has its centre at (x, y) = (j + .5, i + .5);
x grows to the right and y downwards, so "up" is -y. An object of radius r
fits in the box [x - r, x + r] x [y - r, y + r] around its position (x, y):
a circle of radius r, a square of half-side r, or a triangle with its apex
at (x, y - r) and its base on y + r (the triangle's centroid is r/3 below its
position). An object bounces when its box touches a wall: the velocity
component normal to that wall flips. Objects are drawn in index order, so
object n is at depth layer n + 1 and later objects hide earlier ones; a
scene is redrawn until every object shows at least a quarter of its area in
every frame.

Fields of an example (T = num_frames, H = W = resolution, N = max_objects,
S = num_frames * sample_rate // fps):

  video        uint8   [T, H, W, 3]  RGB frames.
  audio        float32 [S]           mono, in [-1, 1], T / fps seconds.
  caption      str                   e.g. "a small red circle moves left".
  num_objects  int32   []            objects in the clip, 1..N.
  object_mask  bool    [N]           True for the first num_objects slots.
  shape        int32   [N]           index into SHAPES; -1 in padding slots.
  colour       int32   [N]           index into COLOURS; -1 in padding.
  size         int32   [N]           index into SIZES; -1 in padding.
  motion       int32   [N]           index into MOTIONS (initial direction);
                                     -1 in padding.
  velocity     float32 [N, 2]        initial velocity (dx, dy) in pixels per
                                     frame; 0 in padding.
  positions    float32 [T, N, 2]     object position (x, y) at each frame
                                     (box centre, see above); 0 in padding.
  bounces      int32   [T, N]        1 at frame t if the object touched a
                                     wall between frames t - 1 and t (its
                                     click sounds at that exact moment).
  flow         float16 [T, H, W, 2]  forward optical flow (dx, dy) in pixels
                                     from frame t to t + 1: the displacement
                                     of the object visible at the pixel, 0 on
                                     the background and at the last frame.
                                     (float16 halves the disk; the error is
                                     below 0.005 px at these speeds.)
  depth        uint8   [T, H, W]     0 on the background, n + 1 where object
                                     n is the nearest one (higher = nearer);
                                     doubles as an instance map. A pixel
                                     belongs to an object when at least half
                                     of it is covered (shapes are drawn
                                     anti-aliased).

Held-out combinations. No object of the train, validation and test splits
has a (shape, colour, motion) triple listed in `cfg.heldout`; every object
of the `test_heldout` split has one.
"""

import dataclasses
import functools
import itertools

import numpy as np

from videopoet import config_lib

SPLITS = ("train", "validation", "test", "test_heldout")
SHAPES = ("circle", "square", "triangle")
# Bright colours that stand out on the dark background, (R, G, B).
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 220, 220),
    "orange": (250, 140, 20),
    "white": (235, 235, 235),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "large")
# Unit directions (dx, dy) with y pointing down, so "up" is -y.
_D = 1 / np.sqrt(2)
MOTION_DIRECTIONS = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-left": (-_D, -_D),
    "up-right": (_D, -_D),
    "down-left": (-_D, _D),
    "down-right": (_D, _D),
    "still": (0.0, 0.0),
}
MOTIONS = tuple(MOTION_DIRECTIONS)

# Object radius as a fraction of the resolution, per size.
SIZE_RADIUS = {"small": 0.1, "large": 0.17}
# Speed range in resolutions per frame: fast enough that most moving objects
# bounce within 17 frames, slow enough to move less than one free span
# (resolution - 2 radius) per frame, so each axis bounces at most once then.
SPEED_RANGE = (0.03, 0.07)
# Every object shows at least this fraction of its area in every frame, so
# that the caption never names an object that cannot be seen; scenes are
# redrawn until it holds (at most MAX_DRAWS times, then the last is kept).
MIN_VISIBLE = 0.25
MAX_DRAWS = 100
# Fundamental (Hz) and harmonic amplitudes (1st, 2nd, ...) per shape: the
# pitch tells the shapes apart and the timbre backs it up.
PITCH_HZ = {"circle": 330.0, "square": 440.0, "triangle": 550.0}
HARMONICS = {
    "circle": (1.0, 0.15),
    "square": (1.0, 0.0, 0.35, 0.0, 0.2),
    "triangle": (1.0, 0.5, 0.3),
}
# Peak amplitude of one object's hum, per size (large objects are louder).
HUM_GAIN = {"small": 0.12, "large": 0.24}
CLICK_GAIN = 0.5
CLICK_SECONDS = 0.006
CLICK_DECAY_SECONDS = 0.0015
# Hums fade in and out so that the clip edges do not sound like clicks.
FADE_SECONDS = 0.01
# Audio is scaled down when its peak would pass this (overlapping clicks).
MAX_PEAK = 0.98

DEFAULT_HELDOUT = (
    ("circle", "red", "left"),
    ("square", "blue", "up-right"),
    ("triangle", "green", "down"),
    ("circle", "yellow", "still"),
)


@dataclasses.dataclass(frozen=True)
class SynthAVConfig:
  """What to generate: sizes, rates, split sizes, seed, held-out triples.

  Attributes:
    resolution: frame height and width in pixels.
    num_frames: frames per clip.
    fps: frames per second.
    sample_rate: audio samples per second; a multiple of `fps`.
    train_size: examples in the `train` split.
    validation_size: examples in the `validation` split.
    test_size: examples in the `test` split.
    test_heldout_size: examples in the `test_heldout` split.
    seed: seeds every example, together with its split and index.
    heldout: (shape, colour, motion) triples kept out of train/validation/
      test and used for every object of test_heldout.
    max_objects: at most this many objects per clip (at least one).
  """

  resolution: int = 64
  num_frames: int = 17
  fps: int = 8
  sample_rate: int = 16000
  train_size: int = 2000
  validation_size: int = 100
  test_size: int = 100
  test_heldout_size: int = 100
  seed: int = 0
  heldout: tuple[tuple[str, str, str], ...] = DEFAULT_HELDOUT
  max_objects: int = 2

  def __post_init__(self):
    # Lists (e.g. from a command line) become hashable tuples.
    object.__setattr__(self, "heldout", tuple(tuple(t) for t in self.heldout))
    _check_at_least(self, "resolution", 32)
    _check_at_least(self, "num_frames", 2)
    _check_at_least(self, "fps", 1)
    _check_at_least(self, "sample_rate", 8000)
    if self.sample_rate % self.fps:
      raise config_lib.ConfigError(
          f"sample_rate={self.sample_rate} is not allowed: it must be a "
          f"multiple of fps={self.fps} (a whole number of samples per frame)"
      )
    for split in SPLITS:
      _check_at_least(self, f"{split}_size", 0)
    _check_at_least(self, "seed", 0)
    _check_at_least(self, "max_objects", 1)
    # More would rarely fit: scenes must show a quarter of every object.
    if self.max_objects > 8:
      raise config_lib.ConfigError(
          f"max_objects={self.max_objects} is not allowed: it must be <= 8"
      )
    self._check_heldout()

  def _check_heldout(self):
    """Every held-out triple names a known shape, colour and motion."""
    allowed = (SHAPES, COLOUR_NAMES, MOTIONS)
    kinds = ("shape", "colour", "motion")
    for triple in self.heldout:
      if len(triple) != 3:
        raise config_lib.ConfigError(
            f"heldout entry {triple!r} is not allowed: it must be a "
            "(shape, colour, motion) triple"
        )
      for name, names, kind in zip(triple, allowed, kinds):
        if name not in names:
          raise config_lib.ConfigError(
              f"heldout entry {triple!r} is not allowed: {name!r} is not a "
              f"{kind}; the {kind}s are: {', '.join(names)}"
          )
    if self.test_heldout_size and not self.heldout:
      raise config_lib.ConfigError(
          f"test_heldout_size={self.test_heldout_size} is not allowed when "
          "heldout is empty: set it to 0 or list held-out triples"
      )
    if not _allowed_triples(self.heldout, held_out=False):
      raise config_lib.ConfigError(
          "heldout is not allowed: it holds out every triple, which leaves "
          "nothing for the train split"
      )

  @property
  def num_samples(self) -> int:
    """Audio samples per clip: exactly num_frames / fps seconds."""
    return self.num_frames * self.sample_rate // self.fps

  def split_size(self, split: str) -> int:
    """Number of examples of `split` (one of `SPLITS`)."""
    _split_id(split)
    return getattr(self, f"{split}_size")


def _check_at_least(cfg: SynthAVConfig, field: str, minimum: int):
  value = getattr(cfg, field)
  if value < minimum:
    raise config_lib.ConfigError(
        f"{field}={value!r} is not allowed: it must be >= {minimum}"
    )


def _split_id(split: str) -> int:
  if split not in SPLITS:
    raise ValueError(
        f"unknown split {split!r}; the splits are: {', '.join(SPLITS)}"
    )
  return SPLITS.index(split)


@functools.lru_cache(maxsize=16)
def _allowed_triples(
    heldout: tuple[tuple[str, str, str], ...], held_out: bool
) -> list[tuple[int, int, int]]:
  """(shape, colour, motion) ids inside (held_out) or outside `heldout`."""
  held = set(map(tuple, heldout))
  return [
      (SHAPES.index(s), COLOUR_NAMES.index(c), MOTIONS.index(m))
      for s, c, m in itertools.product(SHAPES, COLOUR_NAMES, MOTIONS)
      if ((s, c, m) in held) == held_out
  ]


@dataclasses.dataclass(frozen=True)
class _Object:
  """One object's attributes and trajectory."""

  shape: int
  colour: int
  size: int
  motion: int
  radius: float
  velocity: np.ndarray  # [2] float64, initial (dx, dy) in pixels per frame.
  positions: np.ndarray  # [T, 2] float64 box centre per frame.
  bounces: np.ndarray  # [T] bool: a wall was touched since the last frame.
  contacts: np.ndarray  # [B] float64 wall-contact times, in frames.


def _trajectory(
    start: np.ndarray, velocity: np.ndarray, radius: float, cfg: SynthAVConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Constant-velocity motion folded between the walls, in closed form.

  Unfolded, the offset from the low wall is u = start - r + v t; every
  multiple of the free span L = resolution - 2r that u crosses is a bounce,
  and the position is u folded back into [0, L] (a triangle wave).

  Args:
    start: [2] initial box centre (x, y).
    velocity: [2] initial velocity in pixels per frame.
    radius: half the box side.
    cfg: the dataset config.

  Returns:
    positions [T, 2], bounces [T] bool, contact times [B] in frames.
  """
  span = cfg.resolution - 2 * radius
  t = np.arange(cfg.num_frames, dtype=np.float64)[:, None]  # [T, 1]
  u = start - radius + velocity * t  # [T, 2] unfolded offsets.
  laps = np.floor(u / span).astype(np.int64)  # [T, 2] walls crossed.
  frac = u - laps * span
  positions = radius + np.where(laps % 2 == 0, frac, span - frac)
  crossed = laps[1:] != laps[:-1]  # [T - 1, 2]
  bounces = np.zeros(cfg.num_frames, bool)
  bounces[1:] = crossed.any(axis=1)
  frame, axis = np.nonzero(crossed)
  wall = np.maximum(laps[frame, axis], laps[frame + 1, axis]) * span
  contacts = frame + (wall - u[frame, axis]) / velocity[axis]
  return positions, bounces, np.sort(contacts)


def _sample_objects(
    rng: np.random.Generator, cfg: SynthAVConfig, split: str
) -> list[_Object]:
  """Draws attributes and a starting state for each object of a clip."""
  triples = _allowed_triples(cfg.heldout, held_out=split == "test_heldout")
  count = int(rng.integers(1, cfg.max_objects + 1))
  objects = []
  for _ in range(count):
    shape, colour, motion = triples[rng.integers(len(triples))]
    size = int(rng.integers(len(SIZES)))
    radius = SIZE_RADIUS[SIZES[size]] * cfg.resolution
    start = rng.uniform(radius, cfg.resolution - radius, size=2)
    speed = rng.uniform(*SPEED_RANGE) * cfg.resolution
    velocity = speed * np.array(MOTION_DIRECTIONS[MOTIONS[motion]])
    positions, bounces, contacts = _trajectory(start, velocity, radius, cfg)
    objects.append(
        _Object(
            shape,
            colour,
            size,
            motion,
            radius,
            velocity,
            positions,
            bounces,
            contacts,
        )
    )
  return objects


def _signed_distance(
    obj: _Object, xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
  """Signed distance (pixels, < 0 inside) to the object at every frame.

  Exact for the circle and inside the polygons; outside near a corner the
  polygons' distance is underestimated, which only softens the corner's
  anti-aliasing.

  Args:
    obj: the object.
    xs: [1, 1, W] pixel-centre x coordinates.
    ys: [1, H, 1] pixel-centre y coordinates.

  Returns:
    [T, H, W] float32 signed distances.
  """
  dx = xs - obj.positions[:, 0, None, None].astype(np.float32)  # [T, 1, W]
  dy = ys - obj.positions[:, 1, None, None].astype(np.float32)  # [T, H, 1]
  r = np.float32(obj.radius)
  name = SHAPES[obj.shape]
  if name == "circle":
    return np.sqrt(dx * dx + dy * dy) - r
  if name == "square":
    return np.maximum(np.abs(dx), np.abs(dy)) - r
  # Triangle: apex (0, -r), base corners (+-r, r); the sides' outward
  # normals are (+-2, -1) / sqrt(5).
  slant = (2 * np.abs(dx) - dy - r) / np.float32(np.sqrt(5))
  return np.maximum(slant, dy - r)


def _background(rng: np.random.Generator, cfg: SynthAVConfig) -> np.ndarray:
  """A dark, slightly noisy, static background: [H, W, 3] float32."""
  base = rng.uniform(8, 40, size=3)
  noise = rng.normal(0, 2, size=(cfg.resolution, cfg.resolution, 1))
  return (base + noise).astype(np.float32)


def _distances(objects: list[_Object], cfg: SynthAVConfig) -> np.ndarray:
  """Signed distances to every object: [O, T, H, W] float32 (O objects)."""
  coords = np.arange(cfg.resolution, dtype=np.float32) + 0.5
  xs, ys = coords[None, None, :], coords[None, :, None]
  return np.stack([_signed_distance(obj, xs, ys) for obj in objects])


def _visible_enough(distances: np.ndarray) -> bool:
  """Whether every object shows MIN_VISIBLE of its area in every frame."""
  inside = distances <= 0  # [O, T, H, W]
  # Objects are drawn in order: later ones hide earlier ones.
  hidden = np.flip(np.logical_or.accumulate(np.flip(inside), axis=0))
  shown = inside.copy()
  shown[:-1] &= ~hidden[1:]
  area = inside.sum(axis=(2, 3))  # [O, T]
  return bool((shown.sum(axis=(2, 3)) >= MIN_VISIBLE * area).all())


def _render(
    objects: list[_Object], distances: np.ndarray, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Draws the objects anti-aliased, far to near.

  Args:
    objects: the objects, far to near.
    distances: [O, T, H, W] their signed distances (see `_distances`).
    background: [H, W, 3] float32.

  Returns:
    video [T, H, W, 3] uint8 and depth [T, H, W] uint8.
  """
  frames = np.broadcast_to(
      background, distances.shape[1:] + (3,)
  ).copy()  # [T, H, W, 3] f32
  depth = np.zeros(distances.shape[1:], np.uint8)  # [T, H, W]
  for layer, (obj, distance) in enumerate(zip(objects, distances), start=1):
    alpha = np.clip(0.5 - distance, 0, 1)[..., None]  # [T, H, W, 1]
    colour = np.array(COLOURS[COLOUR_NAMES[obj.colour]], np.float32)
    frames += alpha * (colour - frames)
    depth[distance <= 0] = layer
  video = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
  return video, depth


def _flow(
    objects: list[_Object], depth: np.ndarray, cfg: SynthAVConfig
) -> np.ndarray:
  """Forward flow [T, H, W, 2] float16 from the depth (instance) map."""
  # [T, N + 1, 2]: row 0 is the background, row n + 1 object n's motion
  # from frame t to t + 1 (zero at the last frame).
  rows = len(objects) + 1
  table = np.zeros((cfg.num_frames, rows, 2), np.float16)
  for n, obj in enumerate(objects, start=1):
    table[:-1, n] = np.diff(obj.positions, axis=0)
  # A flat row index and `np.take` gather 20x faster than fancy indexing.
  frame = np.arange(cfg.num_frames)[:, None, None]
  row = (frame * rows + depth).reshape(-1)  # [T * H * W]
  flow = np.take(table.reshape(-1, 2), row, axis=0)
  return flow.reshape(depth.shape + (2,))  # [T, H, W, 2]


def _hum(
    obj: _Object, rng: np.random.Generator, cfg: SynthAVConfig
) -> np.ndarray:
  """The object's hum over the whole clip: [S] float64."""
  seconds = np.arange(cfg.num_samples) / cfg.sample_rate
  name = SHAPES[obj.shape]
  weights = np.array(HARMONICS[name])
  phases = rng.uniform(0, 2 * np.pi, size=len(weights))
  hum = np.zeros(cfg.num_samples)
  for k, (weight, phase) in enumerate(zip(weights, phases), start=1):
    if weight:
      hum += weight * np.sin(2 * np.pi * k * PITCH_HZ[name] * seconds + phase)
  return HUM_GAIN[SIZES[obj.size]] * hum / weights.sum()


def _fade(cfg: SynthAVConfig) -> np.ndarray:
  """Raised-cosine fade in and out: [S] float64 in [0, 1]."""
  n = int(FADE_SECONDS * cfg.sample_rate)
  ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
  envelope = np.ones(cfg.num_samples)
  envelope[:n] = ramp
  envelope[-n:] = ramp[::-1]
  return envelope


def _add_click(
    audio: np.ndarray,
    time_s: float,
    rng: np.random.Generator,
    cfg: SynthAVConfig,
):
  """Adds a decaying noise burst starting at `time_s` (in place)."""
  start = int(round(time_s * cfg.sample_rate))
  n = min(int(CLICK_SECONDS * cfg.sample_rate), len(audio) - start)
  if n <= 0:
    return
  decay = np.exp(-np.arange(n) / (CLICK_DECAY_SECONDS * cfg.sample_rate))
  audio[start : start + n] += CLICK_GAIN * decay * rng.uniform(-1, 1, size=n)


def _soundtrack(
    objects: list[_Object], rng: np.random.Generator, cfg: SynthAVConfig
) -> np.ndarray:
  """Hums plus a click at every wall contact: [S] float32 in [-1, 1]."""
  audio = sum(_hum(obj, rng, cfg) for obj in objects) * _fade(cfg)
  for obj in objects:
    for contact in obj.contacts:
      _add_click(audio, contact / cfg.fps, rng, cfg)
  peak = np.abs(audio).max()
  if peak > MAX_PEAK:
    audio *= MAX_PEAK / peak
  return audio.astype(np.float32)


_DIRECTION_WORDS = {
    "left": ("to the left", "left", "leftwards"),
    "right": ("to the right", "right", "rightwards"),
    "up": ("up", "upwards"),
    "down": ("down", "downwards"),
    "up-left": ("up and to the left", "diagonally up and left"),
    "up-right": ("up and to the right", "diagonally up and right"),
    "down-left": ("down and to the left", "diagonally down and left"),
    "down-right": ("down and to the right", "diagonally down and right"),
}
_MOVE_VERBS = ("moves", "slides", "glides", "travels", "drifts")
_STILL_PHRASES = (
    "stays still",
    "sits still",
    "does not move",
    "rests in place",
    "stays in place",
)
_BOUNCE_PHRASES = (
    ", bouncing off the walls",
    ", bouncing off a wall",
    ", bouncing back",
)
# Whole-clip bounce phrases, by axis of motion; they replace the direction.
_AXIS_BOUNCE_PHRASES = {
    "up": ("bounces up and down",),
    "down": ("bounces up and down",),
    "left": ("bounces left and right", "bounces back and forth"),
    "right": ("bounces left and right", "bounces back and forth"),
}
_SENTENCES = (
    "{}",
    "a video where {}",
    "in this clip, {}",
    "on a dark background, {}",
    "we see that {}",
)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
  return options[rng.integers(len(options))]


def _describe(obj: _Object, rng: np.random.Generator) -> str:
  """E.g. "a small red circle moves to the left, bouncing back"."""
  noun = (
      f"a {SIZES[obj.size]} {COLOUR_NAMES[obj.colour]} " f"{SHAPES[obj.shape]}"
  )
  motion = MOTIONS[obj.motion]
  if motion == "still":
    return f"{noun} {_pick(rng, _STILL_PHRASES)}"
  if (
      obj.bounces.any()
      and motion in _AXIS_BOUNCE_PHRASES
      and rng.random() < 0.3
  ):
    return f"{noun} {_pick(rng, _AXIS_BOUNCE_PHRASES[motion])}"
  verb = _pick(rng, _MOVE_VERBS)
  phrase = f"{noun} {verb} {_pick(rng, _DIRECTION_WORDS[motion])}"
  if obj.bounces.any():
    phrase += _pick(rng, _BOUNCE_PHRASES)
  return phrase


def _caption(objects: list[_Object], rng: np.random.Generator) -> str:
  clauses = " and ".join(_describe(obj, rng) for obj in objects)
  return _pick(rng, _SENTENCES).format(clauses)


def _padded(values: list, count: int, fill, dtype) -> np.ndarray:
  """`values` padded with `fill` to `count` entries along axis 0."""
  out = np.full((count,) + np.shape(values[0]), fill, dtype)
  out[: len(values)] = values
  return out


def _object_fields(objects: list[_Object], cfg: SynthAVConfig) -> dict:
  """Per-object ground truth, padded to `cfg.max_objects`."""
  n = cfg.max_objects
  positions = np.zeros((cfg.num_frames, n, 2), np.float32)  # [T, N, 2]
  bounces = np.zeros((cfg.num_frames, n), np.int32)  # [T, N]
  for i, obj in enumerate(objects):
    positions[:, i] = obj.positions
    bounces[:, i] = obj.bounces
  return {
      "num_objects": np.int32(len(objects)),
      "object_mask": _padded([True] * len(objects), n, False, bool),
      "shape": _padded([o.shape for o in objects], n, -1, np.int32),
      "colour": _padded([o.colour for o in objects], n, -1, np.int32),
      "size": _padded([o.size for o in objects], n, -1, np.int32),
      "motion": _padded([o.motion for o in objects], n, -1, np.int32),
      "velocity": _padded([o.velocity for o in objects], n, 0, np.float32),
      "positions": positions,
      "bounces": bounces,
  }


def generate_example(cfg: SynthAVConfig, split: str, index: int) -> dict:
  """Generates example `index` of `split`, a pure function of its arguments.

  Args:
    cfg: the dataset config.
    split: one of `SPLITS`.
    index: the example's index in its split (any non-negative int).

  Returns:
    A dict with the fields listed in the module docstring.
  """
  seq = np.random.SeedSequence([cfg.seed, _split_id(split), index])
  rng = np.random.default_rng(seq)
  for _ in range(MAX_DRAWS):  # Redraw scenes that hide an object too much.
    objects = _sample_objects(rng, cfg, split)
    distances = _distances(objects, cfg)
    if _visible_enough(distances):
      break
  background = _background(rng, cfg)
  video, depth = _render(objects, distances, background)
  example = {
      "video": video,
      "audio": _soundtrack(objects, rng, cfg),
      "caption": _caption(objects, rng),
      "flow": _flow(objects, depth, cfg),
      "depth": depth,
  }
  example.update(_object_fields(objects, cfg))
  return example
