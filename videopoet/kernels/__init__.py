"""The models' convolutions, pads and per-channel ops, in the form fast here.

Model code calls one function per op and reads as the math:

  kernels.conv3d(x, kernel, strides)       VALID 3D convolution, NDHWC
  kernels.conv2d(x, kernel, strides)       'SAME' 2D convolution, NHWC
  kernels.grouped_conv1d(x, kernel, stride, groups)   'SAME', NWC
  kernels.causal_conv1d(x, kernel, bias, stride=, dilation=)  past-padded
  kernels.conv_transpose1d(x, kernel, bias, stride=)   kernel 2 stride
  kernels.blur_pool3d(x)                   [1, 2, 1]^3 blur, stride 2
  kernels.edge_pad(x, pads)                `jnp.pad(x, pads, mode='edge')`
  kernels.shift(x, bias), kernels.scale_and_shift(x, scale, bias)
  kernels.elu(x)                           ELU, alpha 1
  kernels.init_key(rng)                    an 'rbg' key for `model.init`

Each takes `impl`, one of `IMPLS`. "auto" (the default) picks the form for
the backend and what is built:

  onednn   oneDNN through XLA FFI targets (`dnnl_conv3d`): float32 3D
           convolutions on the CPU, where the `kernels` extra is installed
           and built (`make kernels`);
  xla_cpu  forms written for XLA:CPU (`conv3d_xla`, `conv2d_xla`,
           `conv1d_xla`, `blur_pool`, `pad_xla`, `affine`,
           `activation_xla`): 2D convolutions, matmuls, space-to-depth,
           gathers and custom VJPs whose gradients XLA:CPU runs fast;
  lax      one plain `lax` op: GPUs and TPUs (cuDNN, the TPU's convolution
           unit), and the reference the other forms are tested against.

Every form gives the numbers of "lax" up to summation order (tests). Other
values of `impl` force a form: explicit choices for A/B comparisons and test
oracles (e.g. `config.discriminator.kernels="lax"`). `override` changes
what "auto" picks for what is traced inside it (XLA's cost analysis cannot
see into a custom call: FLOPs are counted on the XLA forms), and `backend`
says what it picks now.

`xla_cpu.configure()` (XLA:CPU flags, malloc settings) is called by entry
points before JAX creates its backend, never on import.
"""

import contextlib
from typing import Literal

import jax
import jax.numpy as jnp

from videopoet.kernels import activation_xla
from videopoet.kernels import affine
from videopoet.kernels import blur_pool
from videopoet.kernels import conv1d_xla
from videopoet.kernels import conv2d_xla
from videopoet.kernels import conv3d_xla
from videopoet.kernels import dnnl_conv3d
from videopoet.kernels import init_rng
from videopoet.kernels import pad_xla

Impl = Literal["auto", "onednn", "xla_cpu", "lax"]
IMPLS = ("auto", "onednn", "xla_cpu", "lax")
OPS = (
    "conv3d",
    "conv2d",
    "grouped_conv1d",
    "causal_conv1d",
    "conv_transpose1d",
    "blur_pool3d",
    "edge_pad",
    "affine",
    "elu",
)

# What "auto" resolves to, per op, inside `override` blocks (innermost last).
_OVERRIDES: list[dict[str, str]] = []


@contextlib.contextmanager
def override(**impls: str):
  """Traces inside resolve `impl="auto"` of the named ops to these forms.

  `with kernels.override(conv3d="xla_cpu"): jax.jit(f).lower(...)`.
  """
  for op, impl in impls.items():
    _check(op, impl)
  _OVERRIDES.append(impls)
  try:
    yield
  finally:
    _OVERRIDES.pop()


def _check(op: str, impl: str) -> None:
  if op not in OPS:
    raise ValueError(f"kernels: unknown op {op!r}; the ops are {OPS}")
  if impl not in IMPLS:
    raise ValueError(f"kernels.{op}: impl={impl!r} is not one of {IMPLS}")
  if impl == "onednn" and op != "conv3d":
    raise ValueError(f"kernels.{op}: impl='onednn' is for conv3d only")


def _resolve(op: str, impl: str, onednn_fits: bool = False) -> str:
  """The form `impl` names for `op`; "auto" by override, then backend."""
  _check(op, impl)
  if impl == "auto":
    for impls in reversed(_OVERRIDES):
      if op in impls:
        impl = impls[op]
        break
  if impl != "auto":
    return impl
  if jax.default_backend() != "cpu":
    return "lax"
  if onednn_fits and dnnl_conv3d.available():
    return "onednn"
  return "xla_cpu"


def backend(op: str) -> str:
  """What `impl="auto"` runs for `op` here and now (float32, kernels larger
  than 1x1x1): "onednn", "xla_cpu" or "lax"."""
  return _resolve(op, "auto", onednn_fits=op == "conv3d")


def conv3d(
    x: jax.Array,
    kernel: jax.Array,
    strides: tuple[int, int, int] = (1, 1, 1),
    *,
    impl: Impl = "auto",
) -> jax.Array:
  """VALID 3D convolution.

  Args:
    x: [b, t, h, w, c], already padded.
    kernel: [kt, kh, kw, c, f].
    strides: (st, sh, sw).
    impl: see the module docstring; "auto" takes oneDNN for float32 kernels
      larger than 1x1x1 where it is built, else the XLA:CPU forms, on CPU.

  Returns:
    [b, (t - kt) // st + 1, (h - kh) // sh + 1, (w - kw) // sw + 1, f].
  """
  strides = tuple(int(s) for s in strides)
  fits = (
      kernel.shape[:3] != (1, 1, 1) and x.dtype == kernel.dtype == jnp.float32
  )
  form = _resolve("conv3d", impl, onednn_fits=fits)
  if form == "onednn":
    return dnnl_conv3d.conv3d(x, kernel, strides)
  if form == "xla_cpu":
    return conv3d_xla.conv3d_as_2d(x, kernel, strides)
  return jax.lax.conv_general_dilated(
      x, kernel, strides, "VALID",
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
  )  # fmt: skip


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    strides: tuple[int, int] = (1, 1),
    *,
    impl: Impl = "auto",
) -> jax.Array:
  """'SAME' 2D convolution of x [b, h, w, c] with kernel [kh, kw, c, f].

  Returns [b, ceil(h / sh), ceil(w / sw), f].
  """
  strides = tuple(int(s) for s in strides)
  if _resolve("conv2d", impl) == "xla_cpu":
    return conv2d_xla.conv2d_same(x, kernel, strides)
  return jax.lax.conv_general_dilated(
      x, kernel, strides, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def grouped_conv1d(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    groups: int,
    *,
    impl: Impl = "auto",
) -> jax.Array:
  """'SAME' strided grouped 1-D convolution (`feature_group_count=groups`).

  Args:
    x: [b, n, c].
    kernel: [k, c / groups, f].
    stride: s.
    groups: channel groups (dividing c and f).
    impl: see the module docstring.

  Returns:
    [b, ceil(n / s), f].
  """
  if _resolve("grouped_conv1d", impl) == "xla_cpu":
    return conv1d_xla.grouped_strided_conv(x, kernel, stride, groups)
  return jax.lax.conv_general_dilated(
      x, kernel, (stride,), "SAME",
      dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=groups,
  )  # fmt: skip


def causal_conv1d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    stride: int = 1,
    dilation: int = 1,
    impl: Impl = "auto",
) -> jax.Array:
  """Causal 1-D convolution: (k - 1) * dilation + 1 - stride zeros padded on
  the past side, so output i sees inputs up to the last sample of frame i.

  Args:
    x: [b, n, c].
    kernel: [k, c, f], (k - 1) * dilation + 1 >= stride.
    bias: [f] added to every output (`shift`), or None.
    stride: s.
    dilation: d.
    impl: see the module docstring.

  Returns:
    [b, n // s, f] (the last n % s samples are read by no output).
  """
  k = kernel.shape[0]
  if (k - 1) * dilation + 1 < stride:
    raise ValueError(
        f"kernels.causal_conv1d: kernel {k} (dilation {dilation}) is shorter"
        f" than stride {stride}"
    )
  if _resolve("causal_conv1d", impl) == "xla_cpu":
    y = conv1d_xla.causal_conv_matmul(x, kernel, stride, dilation)
  else:
    y = conv1d_xla.causal_conv_lax(x, kernel, stride, dilation)
  return y if bias is None else shift(y, bias)  # [b, n // s, f]


def conv_transpose1d(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    stride: int,
    impl: Impl = "auto",
) -> jax.Array:
  """Transposed 1-D convolution (`lax.conv_transpose`, kernel not flipped)
  with kernel 2 * stride, keeping the first t * stride outputs: input frame
  i writes outputs i * s .. i * s + 2s - 1, and what the last frame writes
  past the end (frame t's) is dropped.

  Args:
    x: [b, t, c].
    kernel: [2 s, c, f].
    bias: [f] added to every output (`shift`), or None.
    stride: s.
    impl: see the module docstring.

  Returns:
    [b, t * s, f].
  """
  if kernel.shape[0] != 2 * stride:
    raise ValueError(
        f"kernels.conv_transpose1d: kernel {kernel.shape[0]} is not 2 x"
        f" stride {stride}"
    )
  b, t, _ = x.shape
  s, f = stride, kernel.shape[-1]
  if _resolve("conv_transpose1d", impl) == "xla_cpu":
    # Frames [b, t, s * f]: the bias is added (and its gradient summed)
    # per frame, tiled s times, as the matmul writes them.
    y = conv1d_xla.conv_transpose_matmul(x, kernel, stride)
    if bias is not None:
      y = shift(y, jnp.tile(bias, s))
    return y.reshape(b, t * s, f)
  y = conv1d_xla.conv_transpose_lax(x, kernel, stride)
  return y if bias is None else shift(y, bias)  # [b, t * s, f]


def blur_pool3d(x: jax.Array, *, impl: Impl = "auto") -> jax.Array:
  """[1, 2, 1]^3 / 64 depthwise blur, stride 2, 'SAME', on [b, t, h, w, c]:
  ceil(t / 2), ceil(h / 2), ceil(w / 2)."""
  if _resolve("blur_pool3d", impl) == "xla_cpu":
    return blur_pool.separable(x)
  return blur_pool.depthwise(x)


def shift(x: jax.Array, bias: jax.Array, *, impl: Impl = "auto"):
  """x + bias over the last axis."""
  if _resolve("affine", impl) == "xla_cpu":
    return affine.shift(x, bias)
  return x + bias


def scale_and_shift(
    x: jax.Array, scale: jax.Array, bias: jax.Array, *, impl: Impl = "auto"
):
  """x * scale + bias over the last axis."""
  if _resolve("affine", impl) == "xla_cpu":
    return affine.scale_and_shift(x, scale, bias)
  return x * scale + bias


def edge_pad(
    x: jax.Array,
    pads: tuple[tuple[int, int], ...],
    *,
    impl: Impl = "auto",
) -> jax.Array:
  """`jnp.pad(x, pads, mode='edge')`: each border repeats its edge."""
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  if _resolve("edge_pad", impl) == "xla_cpu":
    return pad_xla.edge_pad(x, pads)
  return jnp.pad(x, pads, mode="edge")


def elu(x: jax.Array, *, impl: Impl = "auto") -> jax.Array:
  """ELU (alpha 1): x above zero, exp(x) - 1 below."""
  if _resolve("elu", impl) == "xla_cpu":
    return activation_xla.elu(x)
  return jax.nn.elu(x)


init_key = init_rng.init_key
