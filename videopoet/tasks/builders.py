"""One builder per task: an example's token grids -> a `layout.Sequence`.

An example (a record of `tokenize_data`, or a synthetic one in tests) holds

  video      int32 [t', h', w']  visual codes in [0, 2^K),
  audio      int32 [levels, f]   RVQ codes in [0, codebook),
  structure  int32 [t', h', w']  codes of the flow + depth video,
  text       int32 [max_text]    sentencepiece ids, -1 after the caption
             (text_mode 'ids'), or
  text_mask  bool  [max_text]    its valid ids, and
  text_embeddings_mask  bool [max_text]  the valid positions of the
             caption's T5 embeddings (text_mode 'embeddings'; the
             embeddings travel beside the tokens: `tasks.text_embeddings`).

Builders take only the fields their task needs, so a dataset without audio
can still train the visual tasks. What made the records (`Context.spec`,
their `tokens.json`) fixes the text length and the video tokenizer's time
factor, which ties audio frames to latent frames.
"""

import dataclasses
from typing import Any, Literal, Mapping

import numpy as np

from videopoet import config_lib
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.tasks import layout
from videopoet.tasks import masks

Example = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """How examples become sequences (`config.tasks`).

  Attributes:
    text_mode: 'ids' (sentencepiece ids in the vocabulary) or 'embeddings'
      (precomputed embeddings, projected by one dense layer).
    text_dropout: probability of dropping the caption (all `<pad>`), so the
      model also learns the unconditional case (classifier-free guidance).
    min_context_frames: frame continuation: fewest latent frames given.
    inpaint_fraction: (lo, hi) side of the hidden central box, as a
      fraction of the frame side.
    outpaint_fraction: (lo, hi) hidden fraction of the frame on one side.
    stylization_first_frame: stylization also gets the first RGB frame.
  """

  text_mode: Literal["ids", "embeddings"] = "ids"
  text_dropout: float = 0.1
  min_context_frames: int = 1
  inpaint_fraction: tuple[float, float] = (0.25, 0.5)
  outpaint_fraction: tuple[float, float] = (0.25, 0.75)
  stylization_first_frame: bool = False

  def __post_init__(self):
    if not 0 <= self.text_dropout <= 1:
      raise config_lib.ConfigError(
          f"config.tasks.text_dropout={self.text_dropout} is not in [0, 1]"
      )
    for name in ("inpaint_fraction", "outpaint_fraction"):
      lo, hi = getattr(self, name)
      if not 0 < lo <= hi < 1:
        raise config_lib.ConfigError(
            f"config.tasks.{name}=({lo}, {hi}) needs 0 < lo <= hi < 1"
        )


@dataclasses.dataclass(frozen=True)
class Context:
  """What a builder works with besides the example.

  Attributes:
    vocab: the LM's id ranges.
    config: how examples become sequences.
    spec: what made the examples (`tokens.json`): the text segment length
      (`max_text_len`, VideoPoet: 64 T5 tokens) and the time factor.
    rng: this example's random draws.
  """

  vocab: vocab_lib.Vocab
  config: TaskConfig
  spec: token_spec.TokenSpec
  rng: np.random.Generator


def _field(ex: Example, name: str, task: str) -> np.ndarray:
  if name not in ex:
    raise KeyError(f"task {task} needs the field {name!r}; got {sorted(ex)}")
  return np.asarray(ex[name])


def _text(sb: layout.SequenceBuilder, ex: Example, ctx: Context, task: str):
  """`<bot_i> text <eot_i>`, fixed length, `<pad>` after the caption."""
  v, cfg, n = ctx.vocab, ctx.config, ctx.spec.max_text_len
  drop = ctx.rng.random() < cfg.text_dropout
  if cfg.text_mode == "ids":
    text = _field(ex, "text", task)
    valid = (text >= 0) & (not drop)
    ids = np.where(valid, v.text_to_ids(np.maximum(text, 0)), v.pad)
  else:
    valid = _field(ex, "text_embeddings_mask", task).astype(bool) & (not drop)
    ids = np.where(valid, v.special("<text_emb>"), v.pad)
  if len(ids) != n:
    raise ValueError(
        f"text has length {len(ids)}, but the tokens' max_text_len"
        f" (tokens.json) is {n}"
    )
  sb.add_segment("<bot_i>", ids, "<eot_i>")


def _end_prefix(sb: layout.SequenceBuilder, out_video: np.ndarray | None):
  """Ends the prefix, after `<res>` when the output grid is not square.

  VideoPoet marks the portrait output resolution (128x224) with `<res>` and
  assumes square (128x128) without it; `out_video` is the output's grid
  [t', h', w'] (None: no visual output).
  """
  if out_video is not None and out_video.shape[1] != out_video.shape[2]:
    sb.add_special("<res>")
  sb.end_prefix()


def _visual_out(sb, v, video, end=True):
  sb.add_segment("<bov_o>", v.visual_to_ids(video), "<eov_o>" if end else None)


def _audio_split(
    audio: np.ndarray, video: np.ndarray, frames_in: int, ctx: Context
) -> int:
  """Audio frames that belong with the first `frames_in` latent frames.

  The example's own frame counts, at the tokens' time factor (a causal
  tokenizer: latent 0 is 1 pixel frame, each later one `time_factor`).
  """
  return ctx.spec.audio_frames_for(
      frames_in, audio_frames=audio.shape[1], clip_latent_frames=video.shape[0]
  )


def unconditional_video(ex, ctx, task="unconditional_video"):
  video = _field(ex, "video", task)
  sb = layout.SequenceBuilder(ctx.vocab, task)
  _end_prefix(sb, video)
  _visual_out(sb, ctx.vocab, video)
  sb.add_special("<eos>")
  return sb.build()


def text_to_video(ex, ctx, task="text_to_video"):
  sb = layout.SequenceBuilder(ctx.vocab, task)
  _text(sb, ex, ctx, task)
  video = _field(ex, "video", task)
  _end_prefix(sb, video)
  _visual_out(sb, ctx.vocab, video)
  sb.add_special("<eos>")
  return sb.build()


def text_to_image(ex, ctx, task="text_to_image"):
  """The image is the first latent frame; no `<eov_o>`, no `<eos>`."""
  sb = layout.SequenceBuilder(ctx.vocab, task)
  _text(sb, ex, ctx, task)
  image = _field(ex, "video", task)[:1]
  _end_prefix(sb, image)
  _visual_out(sb, ctx.vocab, image, end=False)
  return sb.build()


def image_to_video(ex, ctx, task="image_to_video"):
  v, video = ctx.vocab, _field(ex, "video", task)
  sb = layout.SequenceBuilder(v, task)
  _text(sb, ex, ctx, task)
  sb.add_segment("<bov_i>", v.visual_to_ids(video[:1]), "<eov_i>")
  _end_prefix(sb, video)
  _visual_out(sb, v, video[1:])
  sb.add_special("<eos>")
  return sb.build()


def frame_continuation(ex, ctx, task="frame_continuation"):
  """The first k latent frames (random k) -> the rest; fixed total length."""
  v, video = ctx.vocab, _field(ex, "video", task)
  lo = ctx.config.min_context_frames
  if not 1 <= lo < video.shape[0]:
    raise ValueError(
        f"min_context_frames={lo} needs a video of more latent frames than"
        f" that; got {video.shape[0]}"
    )
  # Training draws k; a sampler gives it (`context_frames`).
  k = int(ex.get("context_frames") or ctx.rng.integers(lo, video.shape[0]))
  sb = layout.SequenceBuilder(v, task)
  sb.add_segment("<bov_i>", v.visual_to_ids(video[:k]), "<eov_i>")
  _end_prefix(sb, video)
  _visual_out(sb, v, video[k:])
  sb.add_special("<eos>")
  # With k = lo the output is longest: pad targets to that.
  return sb.build(extra_outputs=int(np.prod(video[lo:k].shape)))


def _painting(ex, ctx, task, mask_fn):
  v, video = ctx.vocab, _field(ex, "video", task)
  # Training draws the mask; a sampler gives it (`mask`).
  hidden = (
      np.asarray(ex["mask"], bool)
      if ex.get("mask") is not None
      else mask_fn(video.shape[1:], ctx)
  )  # [h', w'] bool
  ids = np.where(hidden[None], v.special("<mask>"), v.visual_to_ids(video))
  sb = layout.SequenceBuilder(v, task)
  sb.add_segment("<bov_i>", ids, "<eov_i>")
  _end_prefix(sb, video)
  _visual_out(sb, v, video)
  sb.add_special("<eos>")
  return sb.build()


def inpainting(ex, ctx, task="inpainting"):
  return _painting(ex, ctx, task, masks.central_box)


def outpainting(ex, ctx, task="outpainting"):
  return _painting(ex, ctx, task, masks.one_side)


def stylization(ex, ctx, task="stylization"):
  """Text + the structure (flow, depth) video [+ first frame] -> video."""
  v, video = ctx.vocab, _field(ex, "video", task)
  sb = layout.SequenceBuilder(v, task)
  _text(sb, ex, ctx, task)
  ids = v.visual_to_ids(_field(ex, "structure", task))
  if ctx.config.stylization_first_frame:
    ids = np.concatenate([v.visual_to_ids(video[:1]).reshape(-1), ids.ravel()])
  sb.add_segment("<bov_i>", ids, "<eov_i>")
  _end_prefix(sb, video)
  _visual_out(sb, v, video)
  sb.add_special("<eos>")
  return sb.build()


def video_to_audio(ex, ctx, task="video_to_audio"):
  v = ctx.vocab
  sb = layout.SequenceBuilder(v, task)
  sb.add_segment(
      "<bov_i>", v.visual_to_ids(_field(ex, "video", task)), "<eov_i>"
  )
  _end_prefix(sb, None)  # Audio out: no `<res>`.
  sb.add_segment(
      "<boa_o>", v.audio_to_ids(_field(ex, "audio", task)), "<eoa_o>"
  )
  sb.add_special("<eos>")
  return sb.build()


def audio_to_video(ex, ctx, task="audio_to_video"):
  v = ctx.vocab
  sb = layout.SequenceBuilder(v, task)
  sb.add_segment(
      "<boa_i>", v.audio_to_ids(_field(ex, "audio", task)), "<eoa_i>"
  )
  video = _field(ex, "video", task)
  _end_prefix(sb, video)
  _visual_out(sb, v, video)
  sb.add_special("<eos>")
  return sb.build()


def audio_video_continuation(ex, ctx, task="audio_video_continuation"):
  """First latent frame and its audio -> the rest of both."""
  v = ctx.vocab
  video, audio = _field(ex, "video", task), _field(ex, "audio", task)
  cut = _audio_split(audio, video, 1, ctx)
  sb = layout.SequenceBuilder(v, task)
  sb.add_segment("<bov_i>", v.visual_to_ids(video[:1]), "<eov_i>")
  sb.add_segment("<boa_i>", v.audio_to_ids(audio[:, :cut]), "<eoa_i>")
  _end_prefix(sb, video)
  _visual_out(sb, v, video[1:])
  sb.add_segment("<boa_o>", v.audio_to_ids(audio[:, cut:]), "<eoa_o>")
  sb.add_special("<eos>")
  return sb.build()
