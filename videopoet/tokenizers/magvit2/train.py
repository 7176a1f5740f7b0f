"""MAGVIT-v2 training: VQGAN losses on mixed image/video batches.

Generator loss (praxis `VQGANLoss`, MAGVIT trainer):
  recon_weight * L2 + perceptual.weight * ResNet-logit L2
  + adversarial_weight * softplus(-D(fake)) (from `gan_start_step`)
  + quantizer loss (commitment + annealed LFQ entropy penalty).
Discriminator loss: softplus(-D(real)) + softplus(D(fake))
  + lecam_weight * LeCam(EMA logits) + r1_weight * R1.
Adam(b1=0, b2=0.99) for both, with warmup (and, if `decay_steps`, a cosine
decay); an EMA of the generator is the model that evaluation and
`load_tokenizer` use. In every batch the first
`image_fraction` of the clips become single frames (a random frame each),
so the causal model learns images (T=1) and videos together.

State (a plain dict): params, ema_params, disc_params, opt_g, opt_d,
lecam (EMAs of the real/fake logits), step.
"""

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
import optax

from videopoet import kernels
from videopoet.train_lib import optim
from videopoet.tokenizers.common import ema as ema_lib
from videopoet.tokenizers.common import gan
from videopoet.tokenizers.common import perceptual
from videopoet.tokenizers.magvit2 import model as model_lib
from videopoet.tokenizers.magvit2 import quantizers


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  """`config.discriminator` (praxis defaults: 128, (2, 4, 4, 4)).

  Attributes:
    filters: channels of the first conv.
    channel_multipliers: per residual (downsampling) block.
    kernels: form of its convolutions and blur pools (`videopoet.kernels`):
      "auto" (the fast one for the backend) or "lax" (plain `lax` ops, the
      reference the fast forms are compared with).
  """

  filters: int = 128
  channel_multipliers: tuple[int, ...] = (2, 4, 4, 4)
  kernels: Literal["auto", "lax"] = "auto"


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """`config.loss`.

  Attributes:
    recon_weight: weight of the L2 reconstruction loss (praxis: 5).
    adversarial_weight: generator GAN weight (praxis: 0.1); 0 removes the
      discriminator from the step altogether (an autoencoder run).
    gan_start_step: the GAN terms (G and D) switch on at this step.
    r1_weight: R1 gradient penalty on real clips (praxis: 10).
    r1_every: lazy R1 (StyleGAN2): computed every this many steps, with its
      weight multiplied by as much (1: every step).
    lecam_weight: LeCam regularization (praxis: 0.001).
    lecam_decay: EMA decay of the logits LeCam compares with.
    image_fraction: share of each batch trained as single images.
  """

  recon_weight: float = 5.0
  adversarial_weight: float = 0.1
  gan_start_step: int = 0
  r1_weight: float = 10.0
  r1_every: int = 1
  lecam_weight: float = 0.001
  lecam_decay: float = 0.999
  image_fraction: float = 0.25


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """`config.optimizer`: Adam as in MAGVIT (b1 = 0, b2 = 0.99).

  Attributes:
    learning_rate: generator peak learning rate.
    disc_learning_rate: discriminator peak learning rate.
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    warmup_steps: linear warmup from 0 to the peak rates.
    grad_clip: global-norm clip of each model's gradients.
    decay_steps: 0 keeps the peak rates after the warmup (MAGVIT); N > 0
      decays them along a cosine to `end_fraction` of the peak at step N
      (counted from 0, warmup included; at least warmup_steps + 1) and
      holds them there.
    end_fraction: the decayed rate over the peak rate.
    ema_decay: generator EMA decay (0.999), reached after a warmup
      (`common.ema`: min(decay, (1 + n) / (10 + n)) at update n).
  """

  learning_rate: float = 1e-4
  disc_learning_rate: float = 1e-4
  b1: float = 0.0
  b2: float = 0.99
  warmup_steps: int = 500
  grad_clip: float = 1.0
  decay_steps: int = 0
  end_fraction: float = 0.0
  ema_decay: float = 0.999


def adam(lr: float, cfg: OptimizerConfig) -> optim.Adam:
  """The shared factory's Adam for peak `lr` (generator or discriminator)."""
  return optim.Adam(
      peak=lr, warmup_steps=cfg.warmup_steps, decay_steps=cfg.decay_steps,
      end_fraction=cfg.end_fraction, b1=cfg.b1, b2=cfg.b2,
      grad_clip=cfg.grad_clip,
  )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Trainer:
  """The pure pieces of training; `program.py` wires them to the harness."""

  model: model_lib.ModelConfig
  quantizer: quantizers.QuantizerConfig
  disc: DiscriminatorConfig
  loss: LossConfig
  optimizer: OptimizerConfig
  perceptual: perceptual.PerceptualConfig

  @functools.cached_property
  def tokenizer(self) -> model_lib.Tokenizer:
    return model_lib.Tokenizer(self.model, self.quantizer.build())

  @functools.cached_property
  def discriminator(self) -> gan.Discriminator:
    return gan.Discriminator(
        self.disc.filters, self.disc.channel_multipliers, self.disc.kernels
    )

  @property
  def gan(self) -> bool:
    return self.loss.adversarial_weight > 0

  @property
  def tx_g(self):
    return adam(self.optimizer.learning_rate, self.optimizer).build()

  @property
  def tx_d(self):
    return adam(self.optimizer.disc_learning_rate, self.optimizer).build()

  def init(self, rng: jax.Array, sample: jax.Array) -> dict:
    """Fresh state; `sample` [b, t, h, w, 3] fixes the discriminator size."""
    g_rng, d_rng = jax.random.split(kernels.init_key(rng))
    params = self.tokenizer.init(g_rng, sample[:1])
    disc_params = self.discriminator.init(d_rng, sample[:1])
    return dict(
        params=params,
        ema_params=params,
        disc_params=disc_params,
        opt_g=self.tx_g.init(params),
        opt_d=self.tx_d.init(disc_params),
        lecam=dict(real=jnp.zeros(()), fake=jnp.zeros(())),
        step=jnp.zeros((), jnp.int32),
    )

  def _split(self, video: jax.Array, rng: jax.Array):
    """[b, t, ...] -> (images [n, 1, ...] at random frames, videos)."""
    n = int(round(video.shape[0] * self.loss.image_fraction))
    t = jax.random.randint(rng, (n,), 0, video.shape[1])
    images = video[jnp.arange(n), t][:, None]  # [n, 1, h, w, 3]
    return [x for x in (images, video[n:]) if x.shape[0]]

  def _g_loss(self, params, disc_params, perc_params, clips, step, gan_on):
    total, metrics, fakes = 0.0, {}, []
    weights = [c.shape[0] for c in clips]
    for clip, w in zip(clips, weights):
      w = w / sum(weights)
      recon, q = self.tokenizer.apply(params, clip, step=step)
      l2 = jnp.mean(jnp.square(recon - clip))
      # The discriminator (and its backward pass) only runs once on.
      adv = jnp.zeros(())
      if gan_on:
        adv = gan.g_loss_nonsaturating(
            self.discriminator.apply(disc_params, recon)
        )
      parts = dict(l2=l2, adversarial=adv, quantizer=q.loss, **q.metrics)
      loss = (
          self.loss.recon_weight * l2
          + q.loss
          + self.loss.adversarial_weight * adv
      )
      if perc_params is not None:
        parts["perceptual"] = perceptual.loss(
            self.perceptual, perc_params, clip, recon
        )
        loss += self.perceptual.weight * parts["perceptual"]
      total += w * loss
      for k, v in parts.items():
        metrics[k] = metrics.get(k, 0.0) + w * v
      fakes.append(recon)
    return total, (metrics, fakes)

  def _d_loss(self, disc_params, lecam_ema, clips, fakes, r1):
    apply = lambda x: self.discriminator.apply(disc_params, x)
    out = dict(d_adv=0.0, lecam=0.0, r1=0.0, real_logit=0.0, fake_logit=0.0)
    weights = [c.shape[0] for c in clips]
    for clip, fake, w in zip(clips, fakes, weights):
      w = w / sum(weights)
      real_l, fake_l = apply(clip), apply(jax.lax.stop_gradient(fake))
      out["d_adv"] += w * gan.d_loss_nonsaturating(real_l, fake_l)
      out["lecam"] += w * gan.lecam(
          real_l, fake_l, lecam_ema["real"], lecam_ema["fake"]
      )
      if r1:
        out["r1"] += w * self.loss.r1_every * gan.r1_penalty(apply, clip)
      out["real_logit"] += w * jnp.mean(real_l)
      out["fake_logit"] += w * jnp.mean(fake_l)
    loss = (
        out["d_adv"]
        + self.loss.lecam_weight * out["lecam"]
        + self.loss.r1_weight * out["r1"]
    )
    return loss, out

  def phases(self) -> tuple[str, ...]:
    """The step programs a run uses: 'recon' (before `gan_start_step`),
    'gan', and 'gan_r1' (a GAN step that adds the lazy R1 penalty)."""
    out = ["recon"] if not self.gan or self.loss.gan_start_step > 0 else []
    if self.gan:
      r1 = self.loss.r1_weight > 0
      out += ["gan"] if not r1 or self.loss.r1_every > 1 else []
      out += ["gan_r1"] if r1 else []
    return tuple(out)

  def phase_of(self, step: int) -> str:
    """The program of the step whose state has `step` (counting from 0)."""
    if not self.gan or step < self.loss.gan_start_step:
      return "recon"
    r1 = self.loss.r1_weight > 0 and step % self.loss.r1_every == 0
    return "gan_r1" if r1 else "gan"

  def step(
      self, state: dict, video: jax.Array, rng: jax.Array, perc_params=None,
      *, phase: str,
  ) -> tuple[dict, dict]:  # fmt: skip
    """One G and one D update on `video` [b, t, h, w, 3] in [-1, 1].

    `phase` (static, `phase_of(step)`): 'recon' runs no discriminator;
    'gan' adds the GAN terms and the D update; 'gan_r1' also R1. Separate
    programs, not a `lax.cond`: XLA:CPU runs convolutions inside a
    conditional's branches ~50x slower.
    """
    if phase not in ("recon", "gan", "gan_r1"):
      raise ValueError(f"unknown phase {phase!r}")
    step = state["step"]
    gan_on = self.gan and phase != "recon"
    clips = self._split(video, rng)
    (g_loss, (m, fakes)), g_grads = jax.value_and_grad(
        self._g_loss, has_aux=True
    )(state["params"], state["disc_params"], perc_params, clips, step, gan_on)
    updates, opt_g = self.tx_g.update(g_grads, state["opt_g"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    ema = ema_lib.update(
        state["ema_params"], params, self.optimizer.ema_decay, step
    )

    d_state = {k: state[k] for k in ("disc_params", "opt_d", "lecam")}
    dm = {}
    if self.gan:
      r1 = phase == "gan_r1" and self.loss.r1_weight > 0
      update = self._d_update if gan_on else self._d_skip
      d_state, dm = update(d_state, clips, fakes, r1)
    new = dict(
        params=params, ema_params=ema, opt_g=opt_g, step=step + 1, **d_state
    )
    metrics = {f"train/{k}": v for k, v in {**m, **dm}.items()}
    metrics.update(
        {
            "train/loss": g_loss,
            "train/grad_norm": optax.global_norm(g_grads),
            "train/learning_rate": adam(
                self.optimizer.learning_rate, self.optimizer
            ).schedule()(step),
        }
    )
    return new, metrics

  def _d_update(self, d_state, clips, fakes, r1):
    """One discriminator step; returns its new state and metrics."""
    (d_loss, dm), d_grads = jax.value_and_grad(self._d_loss, has_aux=True)(
        d_state["disc_params"], d_state["lecam"], clips, fakes, r1
    )
    updates, opt_d = self.tx_d.update(
        d_grads, d_state["opt_d"], d_state["disc_params"]
    )
    ld, old = self.loss.lecam_decay, d_state["lecam"]
    lecam = dict(
        real=ld * old["real"] + (1 - ld) * dm["real_logit"],
        fake=ld * old["fake"] + (1 - ld) * dm["fake_logit"],
    )
    new = dict(
        disc_params=optax.apply_updates(d_state["disc_params"], updates),
        opt_d=opt_d,
        lecam=lecam,
    )
    dm = {
        **dm, "disc_loss": d_loss, "disc_grad_norm": optax.global_norm(d_grads)
    }
    return new, {k: jnp.asarray(v, jnp.float32) for k, v in dm.items()}

  def _d_skip(self, d_state, clips, fakes, r1):
    """Before `gan_start_step`: no discriminator work, zero metrics."""
    del r1
    _, shapes = jax.eval_shape(
        functools.partial(self._d_update, r1=False), d_state, clips, fakes
    )
    return d_state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
