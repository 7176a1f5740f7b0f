"""Every task at inference: pixels, sound and text in; pixels and sound out.

    gen = Generator(models)
    clip = gen.text_to_video("a red circle moving left", seed=0)
    clip.video        # uint8 [n, t, h, w, 3], n = num_samples
    clip = gen.video_to_audio(clip.video[0], seed=1)
    clip.audio        # float32 [n, samples] at models.spec.sample_rate

Each task encodes its inputs with the tokenizers that made the LM's tokens,
builds the task's sequence with the task's own builder (`videopoet.tasks`;
the outputs are placeholders there), reads the allowed ids per output
position from that sequence (`decode.output_layout`), samples the outputs
with the KV-cache decoder and decodes them back to media. The layout thus
lives in the builders only.

Chains: `text_to_audio` and `text_to_video_with_audio` are text-to-video
then video-to-audio; `long_video` is text-to-video (or a given clip) then
repeated frame continuation on the last second, each generated clip decoded
and re-encoded so the condition is what training saw: a clip's first frame
coded alone by the causal tokenizer.
"""

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videopoet import decode
from videopoet import sharding
from videopoet import tasks as tasks_lib
from videopoet.sampling import models as models_lib
from videopoet.tasks import masks as masks_lib

PRESETS = ("box",) + masks_lib.SIDES  # Named in/outpainting masks.


class RequestError(ValueError):
  """A request the model cannot serve (reported; the job goes on)."""


@dataclasses.dataclass
class Result:
  """What a task made.

  Attributes:
    video: uint8 [n, t, h, w, 3] (an image task: t = 1), or None.
    audio: float32 [n, samples] in [-1, 1], or None.
    tokens: output tokens sampled per row (all stages of a chain).
  """

  video: np.ndarray | None = None
  audio: np.ndarray | None = None
  tokens: int = 0


@dataclasses.dataclass(frozen=True)
class _Out:
  """Generated codes of one call: visual [n, t', h', w'], audio [n, L, f]."""

  video: np.ndarray | None
  audio: np.ndarray | None
  tokens: int


class Generator:
  """The tasks of one LM, on its mesh.

  Attributes:
    models: the LM and its tokenizers.
    sampling: default sampling settings (a call may override them).
    force_visible: in/outpainting keep the visible cells' known ids
      instead of sampling them.
  """

  def __init__(
      self,
      models: models_lib.Models,
      sampling: decode.SamplingConfig = decode.SamplingConfig(),
      force_visible: bool = True,
  ):
    self.models = models
    self.spec = models.spec
    self.vocab = models.lm.vocab
    self.sampling = sampling
    self.force_visible = force_visible
    # Inference builds sequences without text dropout.
    self.task_config = dataclasses.replace(
        models.lm.task_config, text_dropout=0.0
    )
    self._compiled: dict[Any, Any] = {}

  # --------------------------------------------------------------- Media.
  @property
  def grid(self) -> tuple[int, int, int]:
    return self.spec.latent_grid

  @property
  def clip_samples(self) -> int:
    """Audio samples of one clip."""
    return round(self.spec.num_frames / self.spec.fps * self.spec.sample_rate)

  def encode_video(self, frames: np.ndarray) -> np.ndarray:
    """uint8 [t, h, w, 3] (t = 1 + time_factor * k) -> codes [t', h', w']."""
    x = jnp.asarray(frames, jnp.float32)[None] / 127.5 - 1.0
    return np.asarray(self.models.video.encode_to_indices(x))[0]

  def decode_video(self, codes: np.ndarray) -> np.ndarray:
    """Codes [n, t', h', w'] -> uint8 [n, t, h, w, 3]."""
    x = self.models.video.decode_from_indices(jnp.asarray(codes, jnp.int32))
    x = np.asarray(x, np.float32)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)

  def encode_audio(self, wave: np.ndarray) -> np.ndarray:
    """float [samples] -> codes [levels, f] of one clip's length."""
    self._need_audio()
    wave = np.asarray(wave, np.float32)[: self.clip_samples]
    wave = np.pad(wave, (0, self.clip_samples - len(wave)))
    codes = np.asarray(
        self.models.codec.encode(wave[None], self.spec.audio_levels)
    )[0]
    return codes[:, : self.spec.audio_frames]

  def decode_audio(self, codes: np.ndarray, samples: int) -> np.ndarray:
    """Codes [n, levels, f] -> float32 [n, samples]."""
    out = np.asarray(self.models.codec.decode(codes), np.float32)
    out = out[:, :samples]
    return np.pad(out, ((0, 0), (0, samples - out.shape[1])))

  def encode_text(self, text: str | None) -> np.ndarray:
    """Caption -> sentencepiece ids [max_text_len], -1 after (none: all -1)."""
    n = self.spec.max_text_len
    if not text:
      return np.full(n, -1, np.int32)
    if self.models.text is None:
      raise RequestError("this LM was trained without text")
    pieces = self.models.text.encode(text)
    if len(pieces) > n:
      raise RequestError(
          f"text is {len(pieces)} pieces; the model takes at most {n}"
      )
    ids = np.full(n, -1, np.int32)
    ids[: len(pieces)] = pieces
    return ids

  def text_fields(self, text: str | None) -> dict:
    """A caption as the builders' fields: `text` (sentencepiece ids) or,
    in text_mode 'embeddings', `text_embeddings` bf16 [max_text_len, d]
    and `text_embeddings_mask` from the LM's frozen T5 encoder (the one
    `tokenize_data` used; none: zeros and no valid position)."""
    enc = self.models.text_encoder
    if self.task_config.text_mode != "embeddings":
      return {"text": self.encode_text(text)}
    if enc is None:
      raise RequestError("this LM embeds text but has no text encoder loaded")
    text = text or ""
    if enc.num_tokens(text) > enc.max_len:
      raise RequestError(
          f"text is {enc.num_tokens(text)} T5 tokens; the model takes at"
          f" most {enc.max_len}"
      )
    emb, mask = enc.encode([text])
    return {"text_embeddings": emb[0], "text_embeddings_mask": mask[0]}

  def _embeddings(self, example: dict, seq) -> np.ndarray | None:
    """float32 [max_text_len, d] the LM projects (None: text as ids)."""
    if not self.models.lm.model_config.text_embed_dim:
      return None
    return tasks_lib.text_embeddings(example, seq, self.vocab, self.spec)

  def _need_audio(self):
    if self.models.codec is None:
      raise RequestError("this LM's tokens have no audio")

  def _check_task(self, task: str):
    if task not in self.models.lm.tasks:
      raise RequestError(
          f"the LM was not trained on {task} (its tasks:"
          f" {', '.join(self.models.lm.tasks)})"
      )

  def _zeros_video(self, t: int | None = None) -> np.ndarray:
    t_, h, w = self.grid
    return np.zeros((t or t_, h, w), np.int32)

  def _zeros_audio(self) -> np.ndarray:
    return np.zeros((self.spec.audio_levels, self.spec.audio_frames), np.int32)

  # ---------------------------------------------------------------- Core.
  def _sampler(self, out, cfg, guided, rows):
    key = (
        out.lo.tobytes(), out.hi.tobytes(), out.forced.tobytes(), cfg,
        guided, rows,
    )  # fmt: skip
    if key not in self._compiled:
      config = self.models.lm.model_config
      fn = functools.partial(decode.sample, config, out=out, cfg=cfg)
      self._compiled[key] = jax.jit(
          lambda p, prefix, rng, uncond, text, uncond_text: fn(
              p, prefix=prefix, rng=rng, uncond_prefix=uncond,
              text_embeddings=text, uncond_text_embeddings=uncond_text,
          )
      )  # fmt: skip
    return self._compiled[key]

  def run(
      self,
      task: str,
      example: dict,
      num_samples: int,
      seed: int,
      sampling: decode.SamplingConfig | None = None,
      negative_text: str | None = None,
      known: np.ndarray | None = None,
  ) -> _Out:
    """Samples task `task`'s outputs for `example` (codes; outputs zeros).

    Args:
      task: a registry task the LM was trained on.
      example: the builder's fields (codes), the caption as
        `text_fields` gives it.
      num_samples: rows.
      seed: the PRNG seed (the same seed, the same samples).
      sampling: settings (default `self.sampling`).
      negative_text: the unconditional row's text for guidance (default
        all padding, what text dropout trained).
      known: int32 [n_out] output ids to force (-1: sample), e.g. visible
        in/outpainting cells.
    """
    self._check_task(task)
    cfg = sampling or self.sampling
    rng = np.random.default_rng(seed)
    build = lambda ex: tasks_lib.build(
        task, ex, self.vocab, self.task_config, rng, self.spec
    )
    seq = build(example)
    out = decode.output_layout(seq, self.vocab)
    if known is not None:
      out = dataclasses.replace(
          out, forced=np.where(known >= 0, known, out.forced).astype(np.int32)
      )
    p = seq.prefix_len
    guided = task in tasks_lib.USES_TEXT and cfg.guidance != 1.0
    uncond = uncond_text = None
    text = self._embeddings(example, seq)
    if guided:
      ex_u = dict(example, **self.text_fields(negative_text))
      seq_u = build(ex_u)
      uncond = seq_u.tokens[:p]
      uncond_text = self._embeddings(ex_u, seq_u)
    mesh = self.models.lm.mesh
    dp = sharding.data_parallel_size(mesh)
    rows = -(-num_samples // dp) * dp  # Padded to the data-parallel size.

    def put(x):  # One row -> `rows` rows, batch-sharded on the mesh.
      if x is None:
        return None
      return jax.device_put(
          np.tile(x[None], (rows,) + (1,) * x.ndim),
          sharding.batch_sharding(mesh, 1 + x.ndim),
      )

    sample = self._sampler(out, cfg, guided, rows)
    with jax.set_mesh(mesh), nn.logical_axis_rules(
        list(sharding.LOGICAL_AXIS_RULES)
    ):
      tokens = sample(
          self.models.lm.params,
          put(seq.tokens[:p]),
          jax.random.key(seed),
          put(uncond),
          put(text),
          put(uncond_text),
      )
    tokens = np.asarray(tokens)[:num_samples]  # [n, n_out]
    return self._parse(seq, tokens, example)

  def _parse(self, seq, tokens: np.ndarray, example: dict) -> _Out:
    """Generated rows [n, n_out] -> visual and audio codes."""
    placeholder = seq.tokens[seq.prefix_len :]
    v_lo, v_hi = self.vocab.range_of("visual")
    a_lo, a_hi = self.vocab.range_of("audio")
    is_visual = (placeholder >= v_lo) & (placeholder < v_hi)
    is_audio = (placeholder >= a_lo) & (placeholder < a_hi)
    n = len(tokens)
    video = audio = None
    if is_visual.any():
      _, h, w = self.grid
      ids = tokens[:, is_visual]
      video = self.vocab.ids_to_visual(ids).reshape(n, -1, h, w)
    if is_audio.any():
      ids = tokens[:, is_audio]
      audio = np.stack([self.vocab.ids_to_audio(r) for r in ids])
    return _Out(video, audio, int(is_visual.sum() + is_audio.sum()))

  # --------------------------------------------------------------- Tasks.
  def unconditional_video(self, num_samples=1, seed=0, sampling=None):
    o = self.run(
        "unconditional_video", {"video": self._zeros_video()}, num_samples,
        seed, sampling,
    )  # fmt: skip
    return Result(video=self.decode_video(o.video), tokens=o.tokens)

  def text_to_video(
      self, text, num_samples=1, seed=0, sampling=None, negative_text=None
  ) -> Result:
    ex = {"video": self._zeros_video(), **self.text_fields(text)}
    o = self.run(
        "text_to_video", ex, num_samples, seed, sampling, negative_text
    )
    return Result(video=self.decode_video(o.video), tokens=o.tokens)

  def text_to_image(
      self, text, num_samples=1, seed=0, sampling=None, negative_text=None
  ) -> Result:
    ex = {"video": self._zeros_video(1), **self.text_fields(text)}
    o = self.run(
        "text_to_image", ex, num_samples, seed, sampling, negative_text
    )
    return Result(video=self.decode_video(o.video), tokens=o.tokens)

  def image_to_video(
      self, image, text=None, num_samples=1, seed=0, sampling=None,
      negative_text=None,
  ) -> Result:  # fmt: skip
    """uint8 [h, w, 3] (the clip's size) -> clips starting at that image."""
    first = self.encode_video(np.asarray(image)[None])  # [1, h', w']
    video = np.concatenate([first, self._zeros_video()[1:]])
    ex = {"video": video, **self.text_fields(text)}
    o = self.run(
        "image_to_video", ex, num_samples, seed, sampling, negative_text
    )
    codes = np.concatenate(
        [np.broadcast_to(first, (len(o.video),) + first.shape), o.video], 1
    )
    return Result(video=self.decode_video(codes), tokens=o.tokens)

  def context_frames(self, available: int, seconds: float | None = None):
    """Latent frames of context: the most whole ones in `available` pixel
    frames (and in `seconds`, if given), leaving one latent frame to make."""
    limit = available
    if seconds is not None:
      limit = min(limit, max(1, int(math.floor(seconds * self.spec.fps))))
    k = 1 + (limit - 1) // self.spec.time_factor
    return max(1, min(k, self.grid[0] - 1))

  def frame_continuation(
      self, video, num_samples=1, seed=0, sampling=None, context=None
  ) -> Result:
    """uint8 [t, h, w, 3] -> clips continuing its first frames.

    `context` latent frames are given (default: as many as `video` holds,
    leaving at least one to generate); the result holds the given pixel
    frames' reconstruction and then the generated ones (one clip long).
    """
    video = np.asarray(video)
    k = context or self.context_frames(len(video))
    if not 1 <= k < self.grid[0]:
      raise RequestError(
          f"frame continuation takes 1 to {self.grid[0] - 1} latent frames"
          f" of context, got {k}"
      )
    given = self.spec.pixel_frames(k)
    if len(video) < given:
      raise RequestError(
          f"the video has {len(video)} frames; {k} latent frames need {given}"
      )
    codes = self.encode_video(video[:given])  # [k, h', w']
    full = np.concatenate([codes, self._zeros_video()[k:]])
    ex = {"video": full, "context_frames": k}
    o = self.run("frame_continuation", ex, num_samples, seed, sampling)
    out = np.concatenate(
        [np.broadcast_to(codes, (len(o.video),) + codes.shape), o.video], 1
    )
    return Result(video=self.decode_video(out), tokens=o.tokens)

  def long_video(
      self, seconds, text=None, video=None, num_samples=1, seed=0,
      sampling=None, negative_text=None, context_seconds=1.0,
  ) -> Result:  # fmt: skip
    """`seconds` of video: a first clip (from `text`, or `video`), then
    repeated continuation on its last `context_seconds`.

    Each step re-encodes the last decoded frames as a clip of its own (its
    first frame coded alone, as every training clip), generates one clip
    and keeps its new frames.
    """
    if video is None:
      first = self.text_to_video(
          text, num_samples, seed, sampling, negative_text
      )
      clips, tokens = first.video, first.tokens  # [n, t, h, w, 3]
    else:
      clips = np.broadcast_to(np.asarray(video), (num_samples,) + video.shape)
      tokens = 0
    want = max(1, round(seconds * self.spec.fps))
    k = self.context_frames(self.spec.num_frames, context_seconds)
    given = self.spec.pixel_frames(k)
    step = 0
    while clips.shape[1] < want:
      step += 1
      rows = []
      for i in range(len(clips)):
        r = self.frame_continuation(
            clips[i, -given:], 1, seed + 1000 * step + i, sampling, k
        )
        rows.append(r.video[0, given:])
        tokens += r.tokens
      clips = np.concatenate([clips, np.stack(rows)], 1)
    return Result(video=clips[:, :want], tokens=tokens)

  def mask_cells(self, mask=None, preset: str | None = None, fraction=None):
    """A hidden-cell mask [h', w'] from a pixel mask or a named preset.

    Args:
      mask: bool/uint8 [h, w] at the clip's size (nonzero = to fill); a
        cell is hidden when any of its pixels is.
      preset: 'box' (centred) or 'left'/'right'/'top'/'bottom'.
      fraction: the box's side or the band's width as a fraction of the
        frame (default: the middle of the config's training range).
    """
    _, h, w = self.grid
    if mask is not None:
      m = np.asarray(mask)
      if m.ndim == 3:
        m = m.max(-1)
      if m.shape != (self.spec.height, self.spec.width):
        raise RequestError(
            f"the mask is {m.shape[1]}x{m.shape[0]}; it must be the clip's"
            f" {self.spec.width}x{self.spec.height} after resizing"
        )
      f = self.spec.space_factor
      cells = m.reshape(h, f, w, f).astype(bool).any((1, 3))
    else:
      cfg = self.task_config
      if preset not in PRESETS:
        raise RequestError(
            f"unknown mask preset {preset!r}; use a mask image or one of"
            f" {', '.join(PRESETS)}"
        )
      lo_hi = cfg.inpaint_fraction if preset == "box" else cfg.outpaint_fraction
      fraction = fraction or sum(lo_hi) / 2
      cells = masks_lib.preset(preset, (h, w), fraction)
    if not cells.any() or cells.all():
      raise RequestError("the mask hides no cell, or every cell")
    return cells

  def visible_ids(self, task: str, codes: np.ndarray, cells: np.ndarray):
    """Output ids to force for in/outpainting: the input's ids at the
    visible cells, -1 (sampled) at the hidden ones and the specials."""
    ex = {"video": codes, "mask": cells}
    seq = tasks_lib.build(
        task, ex, self.vocab, self.task_config, np.random.default_rng(0),
        self.spec,
    )  # fmt: skip
    placeholder = seq.tokens[seq.prefix_len :]
    known = np.full(len(placeholder), -1, np.int32)
    v_lo, v_hi = self.vocab.range_of("visual")
    where = np.nonzero((placeholder >= v_lo) & (placeholder < v_hi))[0]
    visible = ~np.broadcast_to(cells, codes.shape).reshape(-1)
    ids = self.vocab.visual_to_ids(codes).reshape(-1)
    known[where[visible]] = ids[visible]
    return known

  def _painting(
      self, task, video, cells, num_samples, seed, sampling
  ) -> Result:
    codes = self.encode_video(np.asarray(video)[: self.spec.num_frames])
    known = self.visible_ids(task, codes, cells) if self.force_visible else None
    ex = {"video": codes, "mask": cells}
    o = self.run(task, ex, num_samples, seed, sampling, known=known)
    return Result(video=self.decode_video(o.video), tokens=o.tokens)

  def inpainting(
      self, video, mask=None, preset="box", num_samples=1, seed=0,
      sampling=None,
  ) -> Result:  # fmt: skip
    cells = self.mask_cells(mask, None if mask is not None else preset)
    return self._painting(
        "inpainting", video, cells, num_samples, seed, sampling
    )

  def outpainting(
      self, video, mask=None, preset="right", num_samples=1, seed=0,
      sampling=None,
  ) -> Result:  # fmt: skip
    cells = self.mask_cells(mask, None if mask is not None else preset)
    return self._painting(
        "outpainting", video, cells, num_samples, seed, sampling
    )

  def stylization(
      self, text, structure_of, num_samples=1, seed=0, sampling=None,
      negative_text=None, depth=None,
  ) -> Result:  # fmt: skip
    """Text + the structure (flow, depth) of a user's clip -> clips.

    Args:
      structure_of: uint8 [t, h, w, 3], the clip whose motion and layout
        the result follows (flow by OpenCV's Farneback, as tokenize_data
        does for non-synthetic data).
      depth: a `structure.DepthEstimator` (None: depth channel 0).
    """
    from videopoet.data import structure as structure_lib  # pylint: disable=g-import-not-at-top

    clip = np.asarray(structure_of)[: self.spec.num_frames]
    flow = structure_lib.farneback_flow(clip)
    d = depth(clip) if depth is not None else np.zeros(clip.shape[:3])
    flow_scale = float(self.spec.extra.get("flow_scale", 4.0))
    s = structure_lib.structure_video(flow, d, flow_scale)  # [-1, 1]
    s_codes = self.encode_video(np.round((s + 1.0) * 127.5).astype(np.uint8))
    ex = {
        "video": self._zeros_video(), "structure": s_codes,
        **self.text_fields(text),
    }  # fmt: skip
    if self.task_config.stylization_first_frame:
      ex["video"] = self.encode_video(clip)
    o = self.run("stylization", ex, num_samples, seed, sampling, negative_text)
    return Result(video=self.decode_video(o.video), tokens=o.tokens)

  def video_to_audio(self, video, num_samples=1, seed=0, sampling=None):
    """uint8 [t, h, w, 3] (one clip) -> its soundtrack [n, samples].

    The result's video is the input clip (once per sample), so each sample
    plays as that clip with its generated sound.
    """
    self._need_audio()
    clip = np.asarray(video)[: self.spec.num_frames]
    codes = self.encode_video(clip)
    ex = {"video": codes, "audio": self._zeros_audio()}
    o = self.run("video_to_audio", ex, num_samples, seed, sampling)
    audio = self.decode_audio(o.audio, self.clip_samples)
    video = np.repeat(clip[None], num_samples, axis=0)
    return Result(video=video, audio=audio, tokens=o.tokens)

  def audio_to_video(self, audio, num_samples=1, seed=0, sampling=None):
    """float [samples] (one clip's length) -> clips that sound like it."""
    self._need_audio()
    ex = {"video": self._zeros_video(), "audio": self.encode_audio(audio)}
    o = self.run("audio_to_video", ex, num_samples, seed, sampling)
    return Result(video=self.decode_video(o.video), tokens=o.tokens)

  def audio_video_continuation(
      self, video, audio, num_samples=1, seed=0, sampling=None
  ) -> Result:
    """The first frame and its sound -> the rest of the clip and its sound."""
    self._need_audio()
    codes = self.encode_video(np.asarray(video)[:1])  # [1, h', w']
    full = np.concatenate([codes, self._zeros_video()[1:]])
    a = self.encode_audio(audio)
    cut = self.spec.audio_frames_for(1, a.shape[1], self.grid[0])
    ex = {"video": full, "audio": np.concatenate(
        [a[:, :cut], np.zeros_like(a[:, cut:])], 1)}  # fmt: skip
    o = self.run("audio_video_continuation", ex, num_samples, seed, sampling)
    n = len(o.video)
    video_codes = np.concatenate(
        [np.broadcast_to(codes, (n,) + codes.shape), o.video], 1
    )
    audio_codes = np.concatenate(
        [np.broadcast_to(a[:, :cut], (n,) + a[:, :cut].shape), o.audio], 2
    )
    return Result(
        video=self.decode_video(video_codes),
        audio=self.decode_audio(audio_codes, self.clip_samples),
        tokens=o.tokens,
    )

  # -------------------------------------------------------------- Chains.
  def text_to_video_with_audio(
      self, text, num_samples=1, seed=0, sampling=None, negative_text=None
  ) -> Result:
    """Text-to-video, then video-to-audio on each clip."""
    self._need_audio()
    self._check_task("video_to_audio")
    clips = self.text_to_video(text, num_samples, seed, sampling, negative_text)
    sounds = [
        self.video_to_audio(clip, 1, seed + 1 + i, sampling)
        for i, clip in enumerate(clips.video)
    ]
    return Result(
        video=clips.video,
        audio=np.concatenate([s.audio for s in sounds]),
        tokens=clips.tokens + sum(s.tokens for s in sounds),
    )

  def text_to_audio(
      self, text, num_samples=1, seed=0, sampling=None, negative_text=None
  ) -> Result:
    """Text -> sound, through a generated video (the chain's video kept)."""
    return self.text_to_video_with_audio(
        text, num_samples, seed, sampling, negative_text
    )
