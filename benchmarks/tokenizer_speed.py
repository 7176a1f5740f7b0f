"""Video tokenizer speed: our MAGVIT-v2 (JAX) against its PyTorch twin.

  python -m benchmarks.tokenizer_speed [--reps=3] [--batch=2] [--filters=16]
      [--blocks=1] [--frames=17] [--res=64]

Peer: `benchmarks/magvit2_torch.py`, the same architecture and size in
PyTorch (channels first, `F.pad(mode='replicate')` + `nn.Conv3d`), random
weights, same threads. Figures (medians over `--reps`, after warm-up):

  * a generator train step on `--batch` clips: encoder -> LFQ
    (straight-through, commitment) -> decoder, L2 loss, backward and an Adam
    update (no discriminator: identical work on both sides);
  * encode + decode of the same clips (inference), as clips per second.

FLOPs of each side (XLA's cost analysis, PyTorch's FlopCounterMode) are
printed so the two can be checked to do the same work. A third model,
lucidrains' `magvit2-pytorch` (`benchmarks/magvit2_lucidrains.py`) at its
closest configuration, does different layers, so it is compared per FLOP:
our seconds per FLOP over its seconds per FLOP (`--nolucidrains` skips it;
it is skipped with a message when the package is missing).

On CPU our float32 convolutions run on oneDNN through XLA FFI targets
where the `kernels` extra is built (`videopoet/kernels/dnnl_conv3d.py`);
`--nodnnl` times the XLA forms instead (`kernels.conv3d`'s "xla_cpu"), and
FLOPs are always counted on those.

`--per_conv` then times every convolution of the model on its own, each
direction (forward, input gradient, kernel gradient), ours against
`torch.nn.functional.conv3d`: where the train-step gap comes from.

Ends with `RESULT` lines (docs/design.md); a ratio <= 1.0 means ours is at least
as fast.
"""

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from benchmarks import common
from benchmarks import magvit2_lucidrains
from benchmarks import magvit2_torch
from videopoet import kernels
from videopoet.kernels import xla_cpu
from videopoet.tokenizers.magvit2 import model as model_lib
from videopoet.tokenizers.magvit2 import quantizers

xla_cpu.configure()  # Before JAX creates its CPU backend.

_REPS = flags.DEFINE_integer("reps", 3, "Timed repetitions (median).")
_BATCH = flags.DEFINE_integer("batch", 2, "Clips per step.")
_FILTERS = flags.DEFINE_integer("filters", 16, "Model filters.")
_BLOCKS = flags.DEFINE_integer("blocks", 1, "Residual blocks per level.")
_FRAMES = flags.DEFINE_integer("frames", 17, "Frames per clip (1 + 4k).")
_RES = flags.DEFINE_integer("res", 64, "Height and width.")
_LUCIDRAINS = flags.DEFINE_bool(
    "lucidrains", True, "Also time magvit2-pytorch (per-FLOP ratio)."
)
_DNNL = flags.DEFINE_bool(
    "dnnl",
    True,
    "Our CPU convolutions through oneDNN (--nodnnl: the XLA forms).",
)
_PER_CONV = flags.DEFINE_bool(
    "per_conv", False, "Also time each convolution, per direction."
)
MULTS, TDOWN, BITS, GROUPS = (1, 2, 2, 4), (False, True, True), 18, 8


def ours(video, reps):
  run_step, run_codec, flops = our_step_and_codec(video)
  return dict(
      train=common.median_seconds(run_step, reps),
      codec=common.median_seconds(run_codec, reps),
      flops=flops,
  )


def our_step_and_codec(video):
  """(train step, encode+decode, their FLOPs): blocking calls, compiled."""
  cfg = model_lib.ModelConfig(
      _FILTERS.value, MULTS, _BLOCKS.value, TDOWN, GROUPS
  )
  tok = model_lib.Tokenizer(cfg, quantizers.LFQ(num_bits=BITS))
  params = jax.jit(lambda r: tok.init(kernels.init_key(r), video[:1]))(
      jax.random.key(0)
  )
  tx = optax.adam(1e-4)
  state = (params, tx.init(params))

  def loss_fn(p, v):
    z = tok.apply(p, v, method=lambda m, x: m.encoder(x))
    q = jnp.where(z > 0, 1.0, -1.0)
    zq = z + jax.lax.stop_gradient(q - z)
    recon = tok.apply(p, zq, method=tok.decode)
    return jnp.mean((recon - v) ** 2) + 0.25 * jnp.mean(
        (jax.lax.stop_gradient(q) - z) ** 2
    )

  def step_fn(state, v):
    p, o = state
    loss, g = jax.value_and_grad(loss_fn)(p, v)
    u, o = tx.update(g, o, p)
    return (optax.apply_updates(p, u), o), loss

  def codec_fn(p, v):
    z = tok.apply(p, v, method=tok.encode).quantized
    return tok.apply(p, z, method=tok.decode)

  step, codec = jax.jit(step_fn), jax.jit(codec_fn)
  # XLA's cost analysis cannot see into oneDNN's custom calls: FLOPs of the
  # same functions traced with the XLA convolution forms (new callables, so
  # that no trace is shared with `step` and `codec`).
  count = lambda fn, *args: (
      jax.jit(lambda *a: fn(*a))
      .lower(*args)
      .compile()
      .cost_analysis()
      .get("flops", float("nan"))
  )
  with kernels.override(conv3d="xla_cpu"):
    flops = {
        "train": count(step_fn, state, video),
        "codec": count(codec_fn, params, video),
    }
  holder = [state]

  def run_step():
    holder[0], loss = step(holder[0], video)
    loss.block_until_ready()

  def run_codec():
    codec(params, video).block_until_ready()

  run_step()  # Traced and compiled now, under the caller's settings
  run_codec()  # (research/tokenizer_ab.py).
  return run_step, run_codec, flops


def peer(video, reps):
  device = common.torch_device(torch)
  model = magvit2_torch.Tokenizer(
      _FILTERS.value, MULTS, _BLOCKS.value, TDOWN, BITS, GROUPS
  ).to(device)
  opt = torch.optim.Adam(model.parameters(), 1e-4)
  x = torch.from_numpy(np.asarray(video)).permute(0, 4, 1, 2, 3).contiguous()
  x = x.to(device)

  def run_step():
    opt.zero_grad(set_to_none=True)
    recon, commit = model(x)
    loss = F_mse(recon, x) + 0.25 * commit
    loss.backward()
    opt.step()

  def run_codec():
    with torch.no_grad():
      model(x)

  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top

  with FlopCounterMode(display=False) as fc:
    run_step()
  train_flops = fc.get_total_flops()
  with FlopCounterMode(display=False) as fc:
    run_codec()
  sync = lambda fn: common.synchronized(torch, device, fn)
  return dict(
      train=common.median_seconds(sync(run_step), reps),
      codec=common.median_seconds(sync(run_codec), reps),
      flops={"train": train_flops, "codec": fc.get_total_flops()},
  )


def F_mse(a, b):  # pylint: disable=invalid-name
  return torch.mean((a - b) ** 2)


def main(argv):
  del argv
  torch.set_num_threads(max(1, torch.get_num_threads()))
  shape = (_BATCH.value, _FRAMES.value, _RES.value, _RES.value, 3)
  video = jax.random.uniform(jax.random.key(1), shape, minval=-1, maxval=1)
  # The peers first: once oneDNN has run on XLA's threads, their idle OpenMP
  # teams count against the machine's cores in the libgomp that PyTorch
  # shares with it, which then throttles PyTorch's spin-waits (its train step
  # measured 0.42 s before ours ran, 0.54-0.62 s after).
  b = peer(video, _REPS.value)
  c = _time_lucidrains(shape) if _LUCIDRAINS.value else None
  with _forms():
    a = ours(video, _REPS.value)
  b_clips = _BATCH.value
  print(
      f"config: filters={_FILTERS.value} blocks={_BLOCKS.value} "
      f"clips={shape} {common.describe_device()} torch={torch.__version__}"
      f" ({common.torch_device(torch)}) threads={torch.get_num_threads()}"
      f" our_convs={_conv_path()}"
  )
  if jax.default_backend() != "cpu":
    print(
        "note: XLA's cost analysis does not count convolutions that run as"
        " library calls (cuDNN), so our GFLOP below undercount on a GPU"
    )
  for k in ("train", "codec"):
    print(
        f"{k}: ours {a[k]:.3f} s ({a['flops'][k] / 1e9:.1f} GFLOP, "
        f"{a['flops'][k] / a[k] / 1e9:.1f} GFLOP/s); torch {b[k]:.3f} s "
        f"({b['flops'][k] / 1e9:.1f} GFLOP, "
        f"{b['flops'][k] / b[k] / 1e9:.1f} GFLOP/s)"
    )
  peer_name = f"torch-{torch.__version__.split('+')[0]}-same-arch"
  print(
      f"RESULT tokenizer_train_step_ratio_vs_torch="
      f"{a['train'] / b['train']:.2f} target<=1.0 peer={peer_name}"
  )
  print(
      f"RESULT tokenizer_encode_decode_ratio_vs_torch="
      f"{a['codec'] / b['codec']:.2f} target<=1.0 peer={peer_name}"
  )
  print(
      f"RESULT tokenizer_encode_decode_clips_per_s="
      f"{b_clips / a['codec']:.2f} target>={b_clips / b['codec']:.2f} "
      f"peer={peer_name}"
  )
  if _LUCIDRAINS.value:
    _lucidrains(a, c)
  if _PER_CONV.value:
    with _forms():
      _per_conv(video)


def _forms():
  """`kernels.conv3d`'s choice, or its XLA forms under --nodnnl."""
  if _DNNL.value or jax.default_backend() != "cpu":
    return kernels.override()
  return kernels.override(conv3d="xla_cpu")


def _conv_path():
  with _forms():
    return {
        "onednn": "onednn-ffi",
        "xla_cpu": "xla-2d-forms",
        "lax": "conv_general_dilated",
    }[kernels.backend("conv3d")]


def _conv_shapes(video):
  """(padded input shape, kernel shape, strides) of each conv of a pass."""
  cfg = model_lib.ModelConfig(
      _FILTERS.value, MULTS, _BLOCKS.value, TDOWN, GROUPS
  )
  tok = model_lib.Tokenizer(cfg, quantizers.LFQ(num_bits=BITS))
  # Traced with every 3D convolution as one `lax` op: the jaxpr's 5-D
  # convolutions (nested jaxprs included) are the model's.
  with kernels.override(conv3d="lax"):
    jaxpr = jax.make_jaxpr(lambda: tok.init(jax.random.key(0), video))()
  shapes = []

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        x, k = (v.aval.shape for v in eqn.invars)
        if len(x) == 5:
          shapes.append((x, k, tuple(eqn.params["window_strides"])))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
          if hasattr(sub, "eqns"):  # A Jaxpr.
            visit(sub)
          elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
            visit(sub.jaxpr)  # A ClosedJaxpr.

  visit(jaxpr.jaxpr)
  return shapes


def _per_conv(video):
  """Times each convolution's three directions, ours and PyTorch's."""
  device = common.torch_device(torch)
  sync = lambda fn: common.synchronized(torch, device, fn)
  print("per convolution, ms (forward / input grad / kernel grad):")
  totals = np.zeros(6)
  for x_shape, k_shape, strides in _conv_shapes(video):
    x = jax.random.normal(jax.random.key(0), x_shape)
    k = jax.random.normal(jax.random.key(1), k_shape) * 0.1
    conv = lambda x, k, s=strides: kernels.conv3d(x, k, s)
    g = jnp.ones_like(jax.jit(conv)(x, k))
    rgb = x_shape[-1] == 3  # The input layer needs no input gradient.
    grad = lambda i: jax.jit(
        lambda x, k, g: jax.vjp(conv, x, k)[1](g)[i]
    )  # XLA drops the forward and the other gradient.
    jx = lambda fn, *a: lambda: jax.block_until_ready(fn(*a))
    ours = [
        common.median_seconds(jx(jax.jit(conv), x, k), _REPS.value),
        0.0
        if rgb
        else common.median_seconds(jx(grad(0), x, k, g), _REPS.value),
        common.median_seconds(jx(grad(1), x, k, g), _REPS.value),
    ]
    xt = torch.randn(x_shape[0], x_shape[4], *x_shape[1:4], device=device)
    kt = torch.randn(k_shape[4], k_shape[3], *k_shape[:3], device=device)
    xt.requires_grad_(not rgb)
    kt.requires_grad_()
    yt = torch.nn.functional.conv3d(xt, kt, stride=strides)
    gt = torch.ones_like(yt)

    def forward():
      with torch.no_grad():
        torch.nn.functional.conv3d(xt, kt, stride=strides)

    tgrad = lambda v: lambda: torch.autograd.grad(yt, v, gt, retain_graph=True)
    peer_ = [
        common.median_seconds(sync(forward), _REPS.value),
        0.0 if rgb else common.median_seconds(sync(tgrad(xt)), _REPS.value),
        common.median_seconds(sync(tgrad(kt)), _REPS.value),
    ]
    row = np.array(ours + peer_) * 1e3
    totals += row
    print(
        f"  x {tuple(x_shape)} kernel {tuple(k_shape)} strides {strides}:"
        f" ours {row[0]:.1f} / {row[1]:.1f} / {row[2]:.1f}, torch"
        f" {row[3]:.1f} / {row[4]:.1f} / {row[5]:.1f}"
    )
  print(
      f"  all convolutions: ours {totals[0]:.0f} / {totals[1]:.0f} /"
      f" {totals[2]:.0f} ms, torch {totals[3]:.0f} / {totals[4]:.0f} /"
      f" {totals[5]:.0f} ms"
  )
  for i, name in enumerate(("forward", "input_grad", "kernel_grad")):
    print(
        f"RESULT tokenizer_convs_{name}_ratio_vs_torch="
        f"{totals[i] / totals[i + 3]:.2f} target<=1.0"
        f" peer=torch-{torch.__version__.split('+')[0]}-conv3d"
    )


def _time_lucidrains(shape):
  """lucidrains' model timed on the same clips, or the reason it was not."""
  try:
    return magvit2_lucidrains.time_peer(
        shape[0], shape[1], shape[2], _REPS.value, common.torch_device(torch)
    )
  except ImportError as e:
    return f"lucidrains magvit2-pytorch skipped: {e}"


def _lucidrains(a, c):
  """Prints lucidrains' timings `c` and the per-FLOP RESULT lines."""
  if isinstance(c, str):
    print(c)
    return
  print(
      f"lucidrains magvit2-pytorch ({c['params'] / 1e6:.2f}M params, layers"
      f" {magvit2_lucidrains.LAYERS}):"
  )
  for k in ("train", "codec"):
    print(
        f"  {k}: {c[k]:.3f} s ({c['flops'][k] / 1e9:.1f} GFLOP,"
        f" {c['flops'][k] / c[k] / 1e9:.1f} GFLOP/s)"
    )
    per_flop = (a[k] / a["flops"][k]) / (c[k] / c["flops"][k])
    name = {"train": "train_step", "codec": "encode_decode"}[k]
    print(
        f"RESULT tokenizer_{name}_time_per_flop_ratio_vs_lucidrains="
        f"{per_flop:.2f} target<=1.0 peer=magvit2-pytorch-0.5.1"
    )


if __name__ == "__main__":
  app.run(main)
