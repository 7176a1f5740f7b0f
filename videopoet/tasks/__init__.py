"""The task registry: name -> builder, and which tasks produce images.

`build(name, example, vocab, config, rng, spec)` runs one task's builder
(`spec`: the `token_spec.TokenSpec` of the tokens the example comes from);
in text_mode 'embeddings', `text_embeddings(example, seq, vocab, spec)` is
what the LM projects into the sequence's `<text_emb>` positions;
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
# Tasks whose prefix length is drawn per example (frame_continuation's k
# context frames); every other task's layout fixes its prefix length.
DRAWN_PREFIX_TASKS = frozenset({"frame_continuation"})
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


def text_embeddings(
    example,
    seq: layout.Sequence,
    vocab: vocab_lib.Vocab,
    spec: token_spec.TokenSpec,
) -> np.ndarray:
  """float32 [max_text_len, text_embed_dim]: the caption's embeddings where
  `seq` holds `<text_emb>`, zeros elsewhere.

  So a dropped caption (text dropout, the unconditional row of guidance)
  and a task without text get zero embeddings and no valid position, as
  the ids path pads them; one home for training and sampling.
  """
  n, d = spec.max_text_len, spec.text_embed_dim
  out = np.zeros((n, d), np.float32)
  if "text_embeddings" not in example:
    return out
  text = seq.tokens[layout.TEXT_OFFSET : layout.TEXT_OFFSET + n]
  valid = np.zeros(n, bool)
  valid[: len(text)] = text == vocab.special("<text_emb>")
  emb = np.asarray(example["text_embeddings"], np.float32)  # [n, d]
  return np.where(valid[:, None], emb, out)


__all__ = [
    "TASKS", "IMAGE_TASKS", "NEEDS", "USES_TEXT", "TaskConfig", "build",
    "text_embeddings",
]  # fmt: skip
