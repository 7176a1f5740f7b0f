"""The task registry: name -> builder, and which tasks produce images.

`build(name, example, vocab, config, rng, spec)` runs one task's builder
(`spec`: the `token_spec.TokenSpec` of the tokens the example comes from);
the order of `TASKS` is the order of the `<task_X>` tokens
(`vocab.TASK_NAMES`).
"""

from typing import Callable

import numpy as np

from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.tasks import builders
from videopoet.tasks import layout
from videopoet.tasks.builders import TaskConfig

TASKS: dict[str, Callable[..., layout.Sequence]] = {
    name: getattr(builders, name) for name in vocab_lib.TASK_NAMES
}
# Tasks whose output is an image: the image side of the image/video schedule.
IMAGE_TASKS = frozenset({"text_to_image"})
# Fields each task reads besides the text.
NEEDS = {
    "unconditional_video": ("video",),
    "text_to_video": ("video",),
    "text_to_image": ("video",),
    "image_to_video": ("video",),
    "frame_continuation": ("video",),
    "inpainting": ("video",),
    "outpainting": ("video",),
    "stylization": ("video", "structure"),
    "video_to_audio": ("video", "audio"),
    "audio_to_video": ("video", "audio"),
    "audio_video_continuation": ("video", "audio"),
}
USES_TEXT = frozenset(
    {"text_to_video", "text_to_image", "image_to_video", "stylization"}
)


def build(
    name: str,
    example,
    vocab: vocab_lib.Vocab,
    config: TaskConfig,
    rng: np.random.Generator,
    spec: token_spec.TokenSpec,
) -> layout.Sequence:
  """The sequence of task `name` for `example`, a record of tokens `spec`."""
  if name not in TASKS:
    raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
  ctx = builders.Context(vocab=vocab, config=config, spec=spec, rng=rng)
  return TASKS[name](example, ctx)


__all__ = ["TASKS", "IMAGE_TASKS", "NEEDS", "USES_TEXT", "TaskConfig", "build"]
