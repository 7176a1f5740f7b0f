"""The codec's training program: SoundStream as a `train_lib.family.Family`.

  family.run(FAMILY, config, workdir)  # `experiments.train_audio_codec`
  codec = FAMILY.load(workdir)         # = codec.load_codec(workdir)

One step (pure, jitted once, state donated):

  1. crop a random `segment_samples` window of each clip; draw the
     per-example quantizer-dropout mask;
  2. generator: encode -> RVQ (EMA/k-means/dead-code update of the
     `quantizer` collection) -> decode; loss = l_rec L_rec + l_commit
     L_commit + l_wave |x - G(x)|_1 + l_adv L_adv + l_feat L_feat, the
     last two (and the discriminators' forward passes) only from
     `loss.gan_start_step` on: two step programs, 'recon' and 'gan',
     compiled ahead of time; the data iterator names each batch's
     (`train_lib.data.PhasedBatches`); Adam (warmup, optional clipping);
  3. discriminators: hinge loss on real and (stop-gradient) fake audio,
     gradient clipping, Adam; skipped before `loss.gan_start_step`;
  4. EMA of the generator's weights (`ema_params`, what `load_codec` uses).

State: `step`, `params`, `ema_params`, `quantizer`, `disc_params`, `opt_g`,
`opt_d`.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from videopoet import config_lib
from videopoet import kernels
from videopoet.train_lib import data as data_lib
from videopoet.train_lib import family
from videopoet.train_lib import harness
from videopoet.train_lib import optim
from videopoet.tokenizers.common import ema as ema_lib
from videopoet.tokenizers.soundstream import codec as codec_lib
from videopoet.tokenizers.soundstream import data as audio_data
from videopoet.tokenizers.soundstream import discriminators as disc_lib
from videopoet.tokenizers.soundstream import losses
from videopoet.tokenizers.soundstream import metrics as metrics_lib
from videopoet.tokenizers.soundstream import model as model_lib
from videopoet.tokenizers.soundstream import rvq


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Loss weights (`config.loss`; paper: adv 1, feat 100, rec 1).

  Attributes:
    adversarial: l_adv, generator hinge loss.
    feature: l_feat, L1 feature matching.
    reconstruction: l_rec, multi-scale mel loss.
    commitment: weight of the RVQ commitment loss.
    mel_floor: mel magnitudes (a full-scale sinusoid reads 0.5) are clamped
      to this before the log of L_rec (the paper does not give it). 1e-3
      (~-54 dB) ignores bins far below the signal: with 1e-5, a perfect
      reconstruction plus noise at 1e-3 of full scale scored almost as
      badly as silence on synth_av's pure tones (1,898 vs 2,396; 5.0 vs
      848 at 1e-3), and training learned to output near-silence.
    waveform: weight of mean |x - G(x)| over samples (EnCodec's time-domain
      term; not in SoundStream, so 0 except in `tiny`). The mel losses do
      not see phase, and without this term a short run decodes each tone at
      the nearest multiple of the frame rate (50 Hz): the decoder repeats
      one waveform per frame (synth_av after 400 steps: 440 -> 450 Hz,
      SI-SDR -29 dB; with 1,000 and learning rate 2e-3: right pitches,
      +1.7 dB).
    gan_start_step: adversarial losses and discriminator updates start
      here (0: from the first step).
  """

  adversarial: float = 1.0
  feature: float = 100.0
  reconstruction: float = 1.0
  commitment: float = 1.0
  mel_floor: float = 1e-3
  waveform: float = 0.0
  gan_start_step: int = 0


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimizers (`config.optimizer`): Adam for both networks.

  Attributes:
    learning_rate: generator peak learning rate.
    disc_learning_rate: discriminators' learning rate.
    b1: Adam beta1 (EnCodec: 0.5).
    b2: Adam beta2 (EnCodec: 0.9).
    warmup_steps: linear warmup of both learning rates.
    gen_grad_clip: generator global-norm clip (0: none).
    disc_grad_clip: discriminator global-norm clip (0: none).
    ema_decay: decay of the generator's weight EMA, reached after a warmup
      (`common.ema`: min(decay, (1 + n) / (10 + n)) at update n).
  """

  learning_rate: float = 3e-4
  disc_learning_rate: float = 3e-4
  b1: float = 0.5
  b2: float = 0.9
  warmup_steps: int = 1000
  gen_grad_clip: float = 0.0
  disc_grad_clip: float = 1.0
  ema_decay: float = 0.999


@dataclasses.dataclass(frozen=True)
class CodecTrainConfig:
  """Everything the program needs, checked from the whole config."""

  trainer: harness.TrainerConfig
  model: model_lib.ModelConfig
  discriminator: disc_lib.DiscriminatorConfig
  loss: LossConfig
  optimizer: OptimizerConfig
  data: audio_data.DataConfig


def parse(config) -> CodecTrainConfig:
  """The typed sections of a `configs/soundstream.py` config."""
  c = CodecTrainConfig(
      trainer=family.parse_trainer(config),
      **{
          name: config_lib.from_config(cls, config[name], f"config.{name}")
          for name, cls in [
              ("model", model_lib.ModelConfig),
              ("discriminator", disc_lib.DiscriminatorConfig),
              ("loss", LossConfig),
              ("optimizer", OptimizerConfig),
              ("data", audio_data.DataConfig),
          ]
      }
  )
  for key in ("batch_size", "eval_clips"):
    if getattr(c.data, key) < 1:
      raise config_lib.ConfigError(
          f"config.data.{key}={getattr(c.data, key)} must be >= 1"
      )
  seg = c.data.segment_samples
  if seg % c.model.hop or seg < max(losses.MEL_SCALES):
    raise config_lib.ConfigError(
        f"config.data.segment_samples={seg} must be a multiple of the hop"
        f" {c.model.hop} and >= {max(losses.MEL_SCALES)}"
    )
  if seg > c.data.clip_samples:
    raise config_lib.ConfigError(
        f"config.data.segment_samples={seg} exceeds clip_samples="
        f"{c.data.clip_samples}"
    )
  # A code's EMA count tends to the frames it gets per step; a threshold
  # near the mean (frames per batch / codes) replaces most codes every step
  # (small, 200 frames per batch: 4,000-8,000 of 8,192 per step at 0.2,
  # 1,400-4,000 at 0.05).
  q = c.model.rvq
  frames = c.data.batch_size * (seg // c.model.hop)
  mean = frames / q.codebook_size
  if q.dead_code_threshold > mean / 2:
    raise config_lib.ConfigError(
        f"config.model.rvq.dead_code_threshold={q.dead_code_threshold} is"
        f" over half the mean EMA count of a code ({mean:.3g} = {frames}"
        f" frames per batch / {q.codebook_size} codes), so most codes would"
        f" be replaced every step; use about {mean / 4:.2g} (a quarter of it)"
        " or a larger batch"
    )
  return c


def _adam(lr, warmup, b1, b2, clip):
  """The shared factory's Adam: (transformation, schedule)."""
  opt = optim.Adam(peak=lr, warmup_steps=warmup, b1=b1, b2=b2, grad_clip=clip)
  return opt.build(), opt.schedule()


def make_step(c: CodecTrainConfig):
  """The pure `(state, batch, rng) -> (state, metrics)` step and init."""
  model = model_lib.SoundStream(c.model)
  disc = disc_lib.Discriminators(c.discriminator)
  o, w = c.optimizer, c.loss
  tx_g, lr_g = _adam(
      o.learning_rate, o.warmup_steps, o.b1, o.b2, o.gen_grad_clip
  )
  tx_d, _ = _adam(
      o.disc_learning_rate, o.warmup_steps, o.b1, o.b2, o.disc_grad_clip
  )
  sr = c.model.sample_rate

  def init(rng):
    key = kernels.init_key(rng, model_lib.INIT_KEY_DERIVATION)
    k_gen, k_disc = jax.random.split(key)
    audio = jnp.zeros((1, c.data.segment_samples), jnp.float32)
    variables = model.init({"params": k_gen}, audio[:, : c.model.hop])
    gen = variables["params"]
    d = disc.init(k_disc, audio)["params"]
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": gen,
        "ema_params": gen,
        "quantizer": variables[rvq.COLLECTION],
        "disc_params": d,
        "opt_g": tx_g.init(gen),
        "opt_d": tx_d.init(d),
    }

  def _step(state, batch, rng, gan: bool):
    """One step; `gan` (static) adds the adversarial terms and D's update."""
    k_crop, k_mask, k_q = jax.random.split(rng, 3)
    audio = data_lib.random_windows(
        batch["audio"], c.data.segment_samples, k_crop
    )
    mask = rvq.dropout_mask(
        k_mask, audio.shape[0], c.model.rvq.num_levels, c.model.rvq.dropout_prob
    )
    if gan:
      real = disc.apply({"params": state["disc_params"]}, audio)

    def gen_loss(gen):
      (rec, _, aux), new = model.apply(
          {"params": gen, "quantizer": state["quantizer"]},
          audio,
          train=True,
          level_mask=mask,
          mutable=[rvq.COLLECTION],
          rngs={rvq.COLLECTION: k_q},
      )
      parts = {
          "rec": losses.multiscale_mel_loss(audio, rec, sr, eps=w.mel_floor),
          "commit": aux["commit_loss"],
          "wave": jnp.mean(jnp.abs(audio - rec)),
          "adv": jnp.zeros(()),
          "feat": jnp.zeros(()),
      }
      if gan:
        fake = disc.apply({"params": state["disc_params"]}, rec)
        parts["adv"] = losses.generator_hinge([l for l, _ in fake])
        parts["feat"] = losses.feature_matching(
            [f for _, f in real], [f for _, f in fake]
        )
      loss = (
          w.reconstruction * parts["rec"]
          + w.commitment * parts["commit"]
          + w.waveform * parts["wave"]
          + w.adversarial * parts["adv"]
          + w.feature * parts["feat"]
      )
      return loss, (rec, new[rvq.COLLECTION], parts, aux)

    (loss, (rec, quantizer, parts, aux)), g_grads = jax.value_and_grad(
        gen_loss, has_aux=True
    )(state["params"])
    updates, opt_g = tx_g.update(g_grads, state["opt_g"], state["params"])
    gen = optax.apply_updates(state["params"], updates)

    def disc_loss(d):
      both = jnp.concatenate([audio, jax.lax.stop_gradient(rec)])
      out = disc.apply({"params": d}, both)
      b = audio.shape[0]
      return losses.discriminator_hinge(
          [l[:b] for l, _ in out], [l[b:] for l, _ in out]
      )

    new_disc, opt_d = state["disc_params"], state["opt_d"]
    d_loss, d_grad_norm = jnp.zeros(()), jnp.zeros(())
    if gan:
      d_loss, d_grads = jax.value_and_grad(disc_loss)(state["disc_params"])
      d_updates, opt_d = tx_d.update(d_grads, opt_d, new_disc)
      new_disc = optax.apply_updates(new_disc, d_updates)
      d_grad_norm = optax.global_norm(d_grads)
    ema = ema_lib.update(state["ema_params"], gen, o.ema_decay, state["step"])
    new_state = {
        "step": state["step"] + 1,
        "params": gen,
        "ema_params": ema,
        "quantizer": quantizer,
        "disc_params": new_disc,
        "opt_g": opt_g,
        "opt_d": opt_d,
    }
    metrics = {f"train/{k}": v for k, v in parts.items()}
    metrics.update(
        {
            "train/loss": loss,
            "train/disc_loss": d_loss,
            "train/grad_norm": optax.global_norm(g_grads),
            "train/disc_grad_norm": d_grad_norm,
            "train/codebook_usage_l0": aux["usage"][0],
            "train/dead_codes": jnp.sum(aux["dead"]).astype(jnp.float32),
            "train/learning_rate": lr_g(state["step"]),
        }
    )
    return new_state, metrics

  def step(state, batch, rng, phase: str):
    """`phase` (static): 'recon' before `loss.gan_start_step`, then 'gan'."""
    return _step(state, batch, rng, gan=phase == "gan")

  return init, step


def make_evaluate(c: CodecTrainConfig, clips: np.ndarray):
  """`(state, step) -> {eval/metric@levels}` on fixed clips [b, n]."""
  codec = None
  levels = tuple(n or c.model.rvq.num_levels for n in c.data.eval_levels)

  def evaluate(state, step):
    del step
    nonlocal codec
    variables = {"params": state["ema_params"], "quantizer": state["quantizer"]}
    if codec is None:
      codec = codec_lib.Codec(c.model, variables)
    codec.variables = variables
    result = metrics_lib.evaluate(
        lambda x, n: codec.reconstruct(x, n), clips, levels
    )
    return {f"eval/{k}": v for k, v in result.items()}

  return evaluate


def phases(c: CodecTrainConfig) -> tuple[str, ...]:
  """The step programs: 'recon' (before `loss.gan_start_step`), then 'gan'."""
  return ("recon", "gan") if c.loss.gan_start_step > 0 else ("gan",)


def phase_of(c: CodecTrainConfig, step: int) -> str:
  """The program of the step whose state has `step` (counting from 0)."""
  return "gan" if step >= c.loss.gan_start_step else "recon"


def make_program(c: CodecTrainConfig, mesh) -> harness.Program:
  """Init, step, data and evaluation of a codec run (`parse`d config)."""
  del mesh  # The harness places the batches; evaluation runs replicated.
  sr = c.model.sample_rate
  source = audio_data.audio_source(c.data, c.data.train_split, sr)
  it = data_lib.batched_iterator(
      source,
      global_batch_size=c.data.batch_size,
      seed=c.trainer.seed,
      transform=audio_data.audio_only,
  )
  eval_source = audio_data.audio_source(c.data, c.data.eval_split, sr)
  n = min(c.data.eval_clips, len(eval_source))
  if not n:
    raise config_lib.ConfigError(
        f"the {c.data.eval_split!r} split (config.data.eval_split) is empty:"
        " nothing to evaluate on"
    )
  clips = np.stack(
      [np.asarray(eval_source[i]["audio"], np.float32) for i in range(n)]
  )
  init, step = make_step(c)
  example = data_lib.example_batch(
      audio_data.audio_only(source[0]), c.data.batch_size
  )
  return harness.Program(
      init=init,
      step=step,
      data=data_lib.PhasedBatches(it, lambda i: phase_of(c, i)),
      groups={p: example for p in phases(c)},
      evaluate=make_evaluate(c, clips),
      guard=("train/loss", "train/disc_loss", "train/grad_norm"),
  )



FAMILY = family.Family(
    name="audio_codec",
    parse=parse,
    make_program=make_program,
    phases=phases,
    phase_of=phase_of,
    load=lambda workdir, step=None: codec_lib.load_codec(workdir, step=step),
    eval_keys=("ema_params", "quantizer"),
)
