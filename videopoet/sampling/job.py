"""The offline sampling job: a prompts file in, videos with sound out.

`experiments.sample` calls `run`. For each request (`requests.parse`) the
job writes, per sample, `<out>/<index>_<task>/sample_<i>.mp4` (H.264, with
the AAC soundtrack when the task makes sound), `.gif`, `.png` (a strip of
the frames; the image itself for text-to-image) and `.wav` (sound tasks),
then appends one row to `<out>/manifest.jsonl`: the request, its outputs,
seed, settings, token counts and seconds, or the reason it failed.

Restartable at any moment: every file is written under a temporary name and
renamed, and the manifest row comes last, in one append. A rerun skips the
requests that have a row (same line number, same text) and redoes the
others, which overwrite any outputs a killed run left; so every request
ends up in the manifest exactly once. A bad request (malformed line,
unknown task or key, missing or undecodable file, text too long, a task the
LM was not trained on) gets a row with its reason and the job goes on.

Processes split the requests by line number (`index % count`); each loads
the models onto its own local devices' mesh.
"""

import dataclasses
import json
import os
import time
from typing import Any

from absl import logging
import jax
import numpy as np
from PIL import Image

from videopoet import config_lib
from videopoet import decode
from videopoet import sharding
from videopoet.data import media
from videopoet.sampling import generate
from videopoet.sampling import models as models_lib
from videopoet.sampling import requests as requests_lib
from videopoet.sampling import superres as superres_lib
from videopoet.superres import sample as superres_sample

MANIFEST = "manifest.jsonl"
# What the samples of a workdir were made with; a rerun must match it.
RECORD = "sampler.json"
FORMATS = ("mp4", "gif", "png", "wav")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
  """`configs/sample.py`.

  Attributes:
    lm: the LM's workdir (`experiments.train`).
    step: its checkpoint (0: the latest).
    prompts: the prompts file (JSON lines).
    sampling: default settings; a request may override each.
    force_visible: in/outpainting keep the visible cells' known ids.
    context_seconds: long video continues from this much of the end.
    max_num_samples: the most samples one request may ask for.
    formats: files written per sample (of mp4, gif, png, wav).
    depth_model: TorchScript depth network for stylization ('' : depth 0).
    mesh: the mesh of each process's local devices.
    superres: comma-separated workdirs of SR transformers
      (`experiments.train_superres`), applied in order to every video
      output, each doubling its height and width ('': none;
      `sampling/superres.py`).
    superres_sampling: the SR stages' MaskGIT settings.
  """

  lm: str = ""
  step: int = 0
  prompts: str = ""
  sampling: decode.SamplingConfig = decode.SamplingConfig()
  force_visible: bool = True
  context_seconds: float = 1.0
  max_num_samples: int = 16
  formats: tuple[str, ...] = FORMATS
  depth_model: str = ""
  mesh: sharding.MeshConfig = sharding.MeshConfig(data=-1, fsdp=1, tensor=1)
  superres: str = ""
  superres_sampling: superres_sample.SRSamplingConfig = (
      superres_sample.SRSamplingConfig()
  )

  def __post_init__(self):
    if not self.lm:
      raise config_lib.ConfigError(
          "config.lm is empty: pass the LM's workdir (--config.lm=W, from"
          " experiments.train)"
      )
    if not self.prompts:
      raise config_lib.ConfigError(
          "config.prompts is empty: pass a JSON-lines file of requests"
          " (--config.prompts=prompts.jsonl)"
      )
    bad = sorted(set(self.formats) - set(FORMATS))
    if bad:
      raise config_lib.ConfigError(
          f"config.formats has {bad}; allowed: {', '.join(FORMATS)}"
      )


# ------------------------------------------------------------ Manifest.
def read_manifest(out_dir: str) -> list[dict]:
  """The rows written so far (a line cut short by a kill is ignored)."""
  path = os.path.join(out_dir, MANIFEST)
  rows = []
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          continue
  return rows


def _append(path: str, data: bytes) -> None:
  """One write() on an O_APPEND file: whole rows even with processes
  appending side by side."""
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    os.write(fd, data)
  finally:
    os.close(fd)


def append_row(out_dir: str, row: dict) -> None:
  line = json.dumps(row, sort_keys=True) + "\n"
  _append(os.path.join(out_dir, MANIFEST), line.encode())


class SamplerChangedError(config_lib.ConfigError):
  """A rerun would sample with another model or settings than the rows."""


def check_record(out_dir: str, record: dict) -> None:
  """Writes `sampler.json`, or refuses when the workdir's differs.

  The rows of a manifest are only comparable when one LM checkpoint with
  one set of default settings made them all: a rerun after the LM trained
  further (the latest step moved) must not mix its samples in.
  """
  path = os.path.join(out_dir, RECORD)
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      old = json.load(f)
    diffs = [
        f"{k}: {old.get(k)!r} -> {record.get(k)!r}"
        for k in sorted(set(old) | set(record))
        if old.get(k) != record.get(k)
    ]
    if diffs:
      raise SamplerChangedError(
          f"{out_dir} holds samples made with other settings ({'; '.join(diffs)});"
          " pass a new --workdir (or --config.step to sample the same"
          " checkpoint)"
      )
    return
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _end_cut_line(out_dir: str) -> None:
  """Ends a row a killed run left without its newline (read_manifest skips
  it, and the next row starts on a line of its own)."""
  path = os.path.join(out_dir, MANIFEST)
  if os.path.exists(path) and os.path.getsize(path):
    with open(path, "rb") as f:
      f.seek(-1, os.SEEK_END)
      if f.read(1) != b"\n":
        _append(path, b"\n")


# ------------------------------------------------------------- Inputs.
def _image(path: str, spec) -> np.ndarray:
  try:
    with Image.open(path) as im:
      rgb = np.asarray(im.convert("RGB"))
  except (OSError, ValueError) as e:
    raise generate.RequestError(f"cannot read the image {path}: {e}") from e
  return media.resize_and_center_crop(rgb[None], spec.height, spec.width)[0]


def _video(path: str, spec) -> np.ndarray:
  try:
    frames, _ = media.read_video(
        path, fps=spec.fps, size=(spec.height, spec.width)
    )
  except media.MediaError as e:
    raise generate.RequestError(str(e)) from e
  return frames  # uint8 [t, h, w, 3]


def _clip(path: str, spec) -> np.ndarray:
  """One clip's frames, the last frame repeated if the file is shorter."""
  frames = _video(path, spec)[: spec.num_frames]
  pad = spec.num_frames - len(frames)
  return np.concatenate([frames, np.repeat(frames[-1:], pad, 0)])


def _audio(path: str, spec) -> np.ndarray:
  try:
    wave = media.read_audio(path, spec.sample_rate)
  except media.MediaError as e:
    raise generate.RequestError(str(e)) from e
  if wave is None:
    raise generate.RequestError(f"{path} has no audio stream")
  return wave


def _mask(value: str, spec) -> dict:
  if value in generate.PRESETS:
    return {"preset": value}
  try:
    with Image.open(value) as im:
      m = im.convert("L").resize((spec.width, spec.height), Image.NEAREST)
  except (OSError, ValueError) as e:
    raise generate.RequestError(f"cannot read the mask {value}: {e}") from e
  return {"mask": np.asarray(m) > 127}


def generate_request(
    gen: generate.Generator,
    req: requests_lib.Request,
    cfg: SampleConfig,
    depth=None,
) -> generate.Result:
  """Runs one request's task (or chain)."""
  spec, f = gen.spec, req.fields
  common = dict(
      num_samples=req.num_samples, seed=req.seed,
      sampling=req.sampling(cfg.sampling),
  )  # fmt: skip
  text = dict(text=f.get("text"), negative_text=f.get("negative_text"))
  task = req.task
  if task in ("text_to_video", "text_to_image", "text_to_audio",
              "text_to_video_with_audio"):  # fmt: skip
    return getattr(gen, task)(**text, **common)
  if task == "unconditional_video":
    return gen.unconditional_video(**common)
  if task == "image_to_video":
    return gen.image_to_video(_image(f["image"], spec), **text, **common)
  if task == "frame_continuation":
    return gen.frame_continuation(_video(f["video"], spec), **common)
  if task == "long_video":
    video = _clip(f["video"], spec) if "video" in f else None
    return gen.long_video(
        f["seconds"], video=video, context_seconds=cfg.context_seconds,
        **text, **common,
    )  # fmt: skip
  if task in ("inpainting", "outpainting"):
    m = _mask(f["mask"], spec) if "mask" in f else {}
    return getattr(gen, task)(_clip(f["video"], spec), **m, **common)
  if task == "stylization":
    return gen.stylization(
        structure_of=_clip(f["structure"], spec), depth=depth, **text,
        **common,
    )  # fmt: skip
  if task == "video_to_audio":
    return gen.video_to_audio(_clip(f["video"], spec), **common)
  if task == "audio_to_video":
    return gen.audio_to_video(_audio(f["audio"], spec), **common)
  if task == "audio_video_continuation":
    audio = _audio(f.get("audio", f["video"]), spec)
    return gen.audio_video_continuation(
        _clip(f["video"], spec), audio, **common
    )
  raise generate.RequestError(f"unknown task {task!r}")


# ------------------------------------------------------------ Outputs.
def write_outputs(
    out_dir: str, req: requests_lib.Request, result: generate.Result,
    spec, formats: tuple[str, ...],
) -> list[dict]:  # fmt: skip
  """Writes each sample's files (atomically); returns their paths."""
  folder = os.path.join(out_dir, req.name)
  n = len(result.video if result.video is not None else result.audio)
  outputs = []
  for i in range(n):
    base = os.path.join(folder, f"sample_{i}")
    files = {}
    audio = None if result.audio is None else result.audio[i]
    if result.video is not None:
      video = result.video[i]  # [t, h, w, 3]
      if len(video) == 1:  # An image.
        media.write_png(base + ".png", video[0])
        files["png"] = base + ".png"
      else:
        if "mp4" in formats:
          media.write_mp4(
              base + ".mp4", video, spec.fps, audio, spec.sample_rate
          )
          files["mp4"] = base + ".mp4"
        if "gif" in formats:
          media.write_gif(base + ".gif", video, spec.fps)
          files["gif"] = base + ".gif"
        if "png" in formats:  # The frames side by side.
          media.write_png(base + ".png", np.concatenate(list(video), axis=1))
          files["png"] = base + ".png"
    if audio is not None and "wav" in formats:
      media.write_wav(base + ".wav", audio, spec.sample_rate)
      files["wav"] = base + ".wav"
    outputs.append({"sample": i, **{k: os.path.relpath(v, out_dir)
                                    for k, v in files.items()}})  # fmt: skip
  return outputs


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run(
    cfg: SampleConfig, out_dir: str, process_index: int = 0,
    process_count: int = 1,
) -> dict[str, Any]:  # fmt: skip
  """Serves this process's share of the prompts file; returns a summary.

  Raises:
    FileNotFoundError: the prompts file or the LM workdir is missing.
    config_lib.ConfigError: the LM workdir is not an LM's, or its
      tokens.json names tokenizers that cannot be loaded.
  """
  if not os.path.isfile(cfg.prompts):
    raise FileNotFoundError(f"config.prompts={cfg.prompts} does not exist")
  with open(cfg.prompts, encoding="utf-8") as f:
    lines = f.read().splitlines()
  os.makedirs(out_dir, exist_ok=True)
  _end_cut_line(out_dir)
  done = {(r.get("index"), r.get("key")) for r in read_manifest(out_dir)}
  base = os.path.dirname(os.path.abspath(cfg.prompts))
  mine = [
      (i, line) for i, line in enumerate(lines)
      if line.strip() and i % process_count == process_index
      and (i, requests_lib.line_key(line)) not in done
  ]  # fmt: skip
  total = sum(1 for line in lines if line.strip())
  summary = {"requests": total, "skipped_done": total - len(mine)}
  if process_count > 1:
    summary["skipped_done"] = None  # Only this process's share is known.
  logging.info(
      "sample: %d requests in %s, %d left for process %d/%d",
      total, cfg.prompts, len(mine), process_index, process_count,
  )  # fmt: skip
  if not mine:
    return dict(summary, done=0, errors=0)
  mesh = sharding.create_mesh(cfg.mesh, jax.local_devices())
  models = models_lib.load_models(cfg.lm, mesh, cfg.step or None)
  stages = superres_lib.load_stages(
      superres_lib.parse_paths(cfg.superres), models.spec
  )
  made_with = {
      "lm": models.lm.workdir, "lm_step": models.lm.step,
      "sampling": dataclasses.asdict(cfg.sampling),
      "force_visible": cfg.force_visible,
      "context_seconds": cfg.context_seconds,
  }  # fmt: skip
  if stages:  # Only then: records of runs without SR stay as they were.
    made_with["superres"] = superres_lib.record(stages)
    made_with["superres_sampling"] = dataclasses.asdict(cfg.superres_sampling)
  check_record(out_dir, made_with)
  gen = generate.Generator(models, cfg.sampling, cfg.force_visible)
  depth = None
  if cfg.depth_model:
    from videopoet.data import structure as structure_lib  # pylint: disable=g-import-not-at-top

    depth = structure_lib.DepthEstimator(cfg.depth_model)
  logging.info(
      "sample: LM %s step %d (tasks: %s); tokens of %s",
      models.lm.workdir, models.lm.step, ", ".join(models.lm.tasks),
      models.spec.video_tokenizer,
  )  # fmt: skip
  start, tokens, errors = time.time(), 0, 0
  for n, (i, line) in enumerate(mine, 1):
    t0 = time.time()
    row = {"index": i, "key": requests_lib.line_key(line), "line": line}
    try:
      req = requests_lib.parse(i, line, base, cfg.max_num_samples)
      row.update(task=req.task, request=req.fields, seed=req.seed,
                 num_samples=req.num_samples)  # fmt: skip
      settings = req.sampling(cfg.sampling)
      row["settings"] = dataclasses.asdict(settings)
      result = generate_request(gen, req, cfg, depth)
      if stages and result.video is not None and result.video.shape[1] > 1:
        video, grids = superres_lib.apply(
            stages, gen, result.video, req.fields.get("text"), req.seed,
            cfg.superres_sampling,
        )  # fmt: skip
        result = dataclasses.replace(result, video=video)
        row["superres"] = [
            dict(stage, grid=list(grid), steps=cfg.superres_sampling.steps)
            for stage, grid in zip(superres_lib.record(stages), grids)
        ]
      row["outputs"] = write_outputs(
          out_dir, req, result, models.spec, cfg.formats
      )
      row.update(
          status="done", tokens=result.tokens * req.num_samples,
          lm=models.lm.workdir, lm_step=models.lm.step,
      )  # fmt: skip
      tokens += row["tokens"]
    except (generate.RequestError, media.MediaError) as e:
      errors += 1
      row.update(status="error", reason=str(e))
      logging.warning("sample: request %d (line %d) failed: %s", i, i + 1, e)
    row["seconds"] = round(time.time() - t0, 3)
    append_row(out_dir, row)
    elapsed = time.time() - start
    logging.info(
        "sample: %d/%d requests (%d errors), %.0f tokens/s, ETA %s",
        n, len(mine), errors, tokens / max(elapsed, 1e-9),
        _hms(elapsed / n * (len(mine) - n)),
    )  # fmt: skip
  return dict(summary, done=len(mine) - errors, errors=errors)
