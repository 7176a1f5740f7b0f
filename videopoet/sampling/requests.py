"""Sampling requests: one JSON object per line of a prompts file.

    {"task": "text_to_video_with_audio", "text": "a red circle", "seed": 3}
    {"task": "inpainting", "video": "clip.mp4", "mask": "box"}
    {"task": "long_video", "text": "a blue square", "seconds": 4}

Keys: `task` (a task registry name, or a chain: `long_video`,
`text_to_audio`, `text_to_video_with_audio`), `text`, `negative_text`,
input media paths `image`, `video`, `audio`, `structure` (relative paths
are relative to the prompts file), `mask` (an image path, or a preset:
'box', 'left', 'right', 'top', 'bottom'), `seconds` (long video),
`seed`, `num_samples`, and sampling overrides `temperature`, `top_k`,
`top_p`, `guidance`. Anything else is an error naming the key.
"""

import dataclasses
import hashlib
import json
import os
from typing import Any

from videopoet import decode
from videopoet import vocab as vocab_lib
from videopoet.sampling import generate

CHAINS = ("long_video", "text_to_audio", "text_to_video_with_audio")
TASKS = vocab_lib.TASK_NAMES + CHAINS
MEDIA_KEYS = ("image", "video", "audio", "structure")
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "guidance")

# What each task must be given (besides optional text).
REQUIRED = {
    "image_to_video": ("image",),
    "frame_continuation": ("video",),
    "inpainting": ("video",),
    "outpainting": ("video",),
    "stylization": ("structure",),
    "video_to_audio": ("video",),
    "audio_to_video": ("audio",),
    "audio_video_continuation": ("video",),
    "long_video": ("seconds",),
    "text_to_video": ("text",),
    "text_to_image": ("text",),
    "text_to_audio": ("text",),
    "text_to_video_with_audio": ("text",),
}
# Tasks that produce sound.
SOUND = frozenset({
    "video_to_audio", "audio_video_continuation", "text_to_audio",
    "text_to_video_with_audio",
})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Request:
  """One validated line.

  Attributes:
    index: its line number in the prompts file (0-based, blank lines too).
    key: a hash of the line: a rerun skips a request with the same index
      and key, and redoes an index whose line changed.
    task: the task or chain.
    fields: the remaining keys, media paths made absolute.
    seed: PRNG seed.
    num_samples: samples to draw.
  """

  index: int
  key: str
  task: str
  fields: dict[str, Any]
  seed: int
  num_samples: int

  def sampling(self, default: decode.SamplingConfig) -> decode.SamplingConfig:
    over = {k: self.fields[k] for k in SAMPLING_KEYS if k in self.fields}
    return dataclasses.replace(default, **over)

  @property
  def name(self) -> str:
    """The folder of its outputs: `00007_text_to_video`."""
    return f"{self.index:05d}_{self.task}"


def line_key(line: str) -> str:
  return hashlib.sha256(line.strip().encode()).hexdigest()[:16]


_TYPES = {
    "task": str, "text": str, "negative_text": str, "image": str,
    "video": str, "audio": str, "structure": str, "mask": str,
    "seconds": (int, float), "seed": int, "num_samples": int,
    "temperature": (int, float), "top_k": int, "top_p": (int, float),
    "guidance": (int, float),
}  # fmt: skip


def parse(
    index: int, line: str, base_dir: str, max_num_samples: int = 16
) -> Request:
  """Validates one line.

  Raises:
    generate.RequestError: malformed JSON, an unknown task or key, a value
      of the wrong type or range, a missing input or input file.
  """
  try:
    raw = json.loads(line)
  except json.JSONDecodeError as e:
    raise generate.RequestError(f"not valid JSON: {e}") from e
  if not isinstance(raw, dict):
    raise generate.RequestError("a request must be a JSON object")
  unknown = sorted(set(raw) - set(_TYPES))
  if unknown:
    raise generate.RequestError(
        f"unknown key(s) {', '.join(unknown)}; known: {', '.join(_TYPES)}"
    )
  for k, v in raw.items():
    if isinstance(v, bool) or not isinstance(v, _TYPES[k]):
      raise generate.RequestError(f"{k}={v!r} has the wrong type")
  task = raw.pop("task", None)
  if task not in TASKS:
    raise generate.RequestError(
        f"unknown task {task!r}; known: {', '.join(TASKS)}"
    )
  for need in REQUIRED.get(task, ()):
    if need not in raw:
      raise generate.RequestError(f"task {task} needs {need!r}")
  if task == "long_video" and not ("text" in raw or "video" in raw):
    raise generate.RequestError("long_video needs 'text' or 'video'")
  seed = raw.pop("seed", 0)
  num_samples = raw.pop("num_samples", 1)
  if not 1 <= num_samples <= max_num_samples:
    raise generate.RequestError(
        f"num_samples={num_samples} is not in [1, {max_num_samples}]"
    )
  if "seconds" in raw and not 0 < raw["seconds"] <= 600:
    raise generate.RequestError(f"seconds={raw['seconds']} not in (0, 600]")
  try:  # The sampling settings' own checks.
    decode.SamplingConfig(
        **{k: raw[k] for k in SAMPLING_KEYS if k in raw}
    )
  except ValueError as e:
    raise generate.RequestError(str(e)) from e
  paths = list(MEDIA_KEYS) + (
      ["mask"] if raw.get("mask") not in generate.PRESETS else []
  )
  for k in paths:
    if k in raw:
      path = os.path.join(base_dir, os.path.expanduser(raw[k]))
      if not os.path.isfile(path):
        raise generate.RequestError(f"{k} file {path} does not exist")
      raw[k] = os.path.abspath(path)
  return Request(index, line_key(line), task, raw, seed, num_samples)
