"""3D convolutions on oneDNN through XLA FFI custom calls (XLA:CPU, float32).

XLA:CPU has no fast 3D convolution, and its kernel gradients are slower
still; oneDNN (the `onednn-cpu-gomp` wheel, the library behind PyTorch's CPU
convolutions) runs all three directions at several times XLA's speed on
channels-last tensors, with no copies of the activations. `conv3d` is a
VALID strided 3D convolution with a custom VJP whose forward, input gradient
and kernel gradient are the three targets of `dnnl_conv3d.cc`.

The C++ side is compiled on first use (g++, ~4 s) into a cache folder
(`$VIDEOPOET_CACHE_DIR`, else `~/.cache/videopoet-jax`) under a name that
hashes the source, the jaxlib and oneDNN versions and oneDNN's path (the
library's rpath), and reused after.
`available()` says whether it could be built and loaded; where not (no
compiler, no oneDNN wheel, not Linux x86-64, or `VIDEOPOET_DNNL=0`), it logs
why once and callers use their XLA forms (`conv3d.conv3d_as_2d`); `use`
switches them for what is traced inside it.

Several CPU devices in one mesh (`--xla_force_host_platform_device_count`)
are correct but gain nothing: XLA's SPMD partitioner gathers a custom call's
operands onto every device. Real meshes are GPUs and TPUs, where
`conv3d.conv3d` never takes this path.

  python -m videopoet.tokenizers.common.dnnl_conv3d   # build now, print path
"""

import contextlib
import ctypes
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

_SOURCE = pathlib.Path(__file__).with_name("dnnl_conv3d.cc")
_DIST = "onednn-cpu-gomp"
_DEVEL_DIST = "onednn-devel-cpu-gomp"
_TARGETS = {
    "videopoet_dnnl_conv3d_fwd": "DnnlConv3dForward",
    "videopoet_dnnl_conv3d_bwd_data": "DnnlConv3dBackwardData",
    "videopoet_dnnl_conv3d_bwd_weights": "DnnlConv3dBackwardWeights",
}


class BuildError(RuntimeError):
  """The oneDNN kernels cannot be built or loaded here (the message says why)."""


def _dist_file(dist: str, name: str) -> pathlib.Path:
  """The installed file of `dist` whose path ends with `name`."""
  try:
    files = importlib.metadata.files(dist) or ()
  except importlib.metadata.PackageNotFoundError as e:
    raise BuildError(f"the {dist!r} wheel is not installed") from e
  for f in files:
    if str(f).replace("\\", "/").endswith(name):
      return pathlib.Path(f.locate()).resolve()
  raise BuildError(f"the {dist!r} wheel has no {name!r}")


def _cache_dir() -> pathlib.Path:
  root = os.environ.get("VIDEOPOET_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "videopoet-jax"
  )
  return pathlib.Path(root)


def build() -> pathlib.Path:
  """Compiles `dnnl_conv3d.cc` (if not cached) and returns the library's path.

  Raises:
    BuildError: not Linux x86-64, no oneDNN wheels, no g++, or g++ failed
      (its output in the message).
  """
  if sys.platform != "linux" or platform.machine() != "x86_64":
    raise BuildError(
        f"oneDNN wheels are for Linux x86-64, not {sys.platform}"
        f" {platform.machine()}"
    )
  lib = _dist_file(_DIST, "/libdnnl.so.3")
  header = _dist_file(_DEVEL_DIST, "/oneapi/dnnl/dnnl.hpp")
  include = header.parents[2]  # .../include
  compiler = shutil.which(os.environ.get("CXX", "g++"))
  if compiler is None:
    raise BuildError("no C++ compiler (g++ or $CXX) on PATH")
  versions = (
      f"{importlib.metadata.version('jaxlib')}"
      f"-{importlib.metadata.version(_DIST)}"
  )
  # The library's path too: the build's rpath points into that environment.
  key = f"{versions}:{lib}".encode()
  digest = hashlib.sha256(_SOURCE.read_bytes() + key).hexdigest()
  out = _cache_dir() / f"dnnl_conv3d-{digest[:16]}.so"
  if out.exists():
    return out
  out.parent.mkdir(parents=True, exist_ok=True)
  # Compiled beside its final name, then renamed: concurrent builders (test
  # workers) each write their own file and the last rename wins, whole.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
  os.close(fd)
  cmd = [
      compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-w",
      str(_SOURCE), f"-I{include}", f"-I{jax.ffi.include_dir()}",
      str(lib), f"-Wl,-rpath,{lib.parent}", "-o", tmp,
  ]  # fmt: skip
  done = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    os.unlink(tmp)
    raise BuildError(
        f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    )
  os.replace(tmp, out)
  return out


@functools.cache
def available() -> bool:
  """Whether the oneDNN targets are built, loaded and registered (once)."""
  if os.environ.get("VIDEOPOET_DNNL", "1") == "0":
    logging.info("oneDNN conv3d disabled (VIDEOPOET_DNNL=0): XLA forms.")
    return False
  try:
    path = build()
    library = ctypes.CDLL(str(path))
  except (BuildError, OSError) as e:
    logging.warning("oneDNN conv3d unavailable, XLA forms instead: %s", e)
    return False
  for name, symbol in _TARGETS.items():
    jax.ffi.register_ffi_target(
        name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
    )
  logging.info("3D convolutions on oneDNN (XLA FFI targets of %s)", path)
  return True


_IN_USE = [True]


def enabled() -> bool:
  """Whether 3D convolutions traced now go through oneDNN (see `use`)."""
  return _IN_USE[-1] and available()


@contextlib.contextmanager
def use(on: bool):
  """Traces inside route CPU 3D convolutions to oneDNN (True) or XLA forms.

  For comparisons and FLOP counts (XLA's cost analysis cannot see into a
  custom call): `with dnnl_conv3d.use(False): jax.jit(f).lower(...)`.
  """
  _IN_USE.append(on)
  try:
    yield
  finally:
    _IN_USE.pop()


def out_shape(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    strides: tuple[int, int, int],
) -> tuple[int, int, int, int, int]:
  """[b, t', h', w', f] of a VALID strided convolution."""
  b = x_shape[0]
  spatial = (
      (n - k) // s + 1 for n, k, s in zip(x_shape[1:4], kernel_shape, strides)
  )
  return (b, *spatial, kernel_shape[4])


def _attrs(strides):
  st, sh, sw = strides
  return dict(st=np.int64(st), sh=np.int64(sh), sw=np.int64(sw))


def _call(target, result_shape, *args, strides):
  return jax.ffi.ffi_call(
      target,
      jax.ShapeDtypeStruct(result_shape, jnp.float32),
      vmap_method="sequential",
  )(*args, **_attrs(strides))


# The three directions are bilinear, and each one's VJP is made of the
# other two: differentiable to any order (the discriminator's R1 penalty
# differentiates its input gradient).


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _forward(x, kernel, strides):
  shape = out_shape(x.shape, kernel.shape, strides)
  return _call("videopoet_dnnl_conv3d_fwd", shape, x, kernel, strides=strides)


def _forward_fwd(x, kernel, strides):
  return _forward(x, kernel, strides), (x, kernel)


def _forward_bwd(strides, res, g):
  x, kernel = res
  return (
      _backward_data(g, kernel, strides, x.shape),
      _backward_weights(x, g, strides, kernel.shape),
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _backward_data(g, kernel, strides, x_shape):
  return _call(
      "videopoet_dnnl_conv3d_bwd_data", x_shape, g, kernel, strides=strides
  )


def _backward_data_fwd(g, kernel, strides, x_shape):
  return _backward_data(g, kernel, strides, x_shape), (g, kernel)


def _backward_data_bwd(strides, x_shape, res, dx):
  del x_shape
  g, kernel = res
  return (
      _forward(dx, kernel, strides),
      _backward_weights(dx, g, strides, kernel.shape),
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _backward_weights(x, g, strides, kernel_shape):
  return _call(
      "videopoet_dnnl_conv3d_bwd_weights", kernel_shape, x, g, strides=strides
  )


def _backward_weights_fwd(x, g, strides, kernel_shape):
  return _backward_weights(x, g, strides, kernel_shape), (x, g)


def _backward_weights_bwd(strides, kernel_shape, res, dk):
  del kernel_shape
  x, g = res
  return (
      _backward_data(g, dk, strides, x.shape),
      _forward(x, dk, strides),
  )


_forward.defvjp(_forward_fwd, _forward_bwd)
_backward_data.defvjp(_backward_data_fwd, _backward_data_bwd)
_backward_weights.defvjp(_backward_weights_fwd, _backward_weights_bwd)


def conv3d(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int, int]
) -> jax.Array:
  """VALID strided 3D convolution on oneDNN (where `available()`).

  Args:
    x: [b, t, h, w, c] float32, already padded.
    kernel: [kt, kh, kw, c, f] float32.
    strides: (st, sh, sw).

  Returns:
    [b, (t - kt) // st + 1, (h - kh) // sh + 1, (w - kw) // sw + 1, f].
  """
  if not available():
    raise RuntimeError(
        "oneDNN conv3d is not available here (see the warning logged); use"
        " conv3d.conv3d, which falls back to the XLA forms"
    )
  if x.dtype != jnp.float32 or kernel.dtype != jnp.float32:
    raise TypeError(
        f"oneDNN conv3d takes float32, got {x.dtype} x and {kernel.dtype}"
        " kernel"
    )
  strides = tuple(int(s) for s in strides)
  _, t, h, w, f = out_shape(x.shape, kernel.shape, strides)
  # Frames, rows and columns that no window reaches: cropped here (their
  # input gradient is then zero by JAX's slice transpose).
  covered = [
      (n - 1) * s + k for n, s, k in zip((t, h, w), strides, kernel.shape)
  ]
  x = x[:, : covered[0], : covered[1], : covered[2]]
  return _forward(x, kernel, strides)


if __name__ == "__main__":
  print(build())
