"""3D convolutions on oneDNN through XLA FFI custom calls (XLA:CPU, float32).

XLA:CPU has no fast 3D convolution, and its kernel gradients are slower
still; oneDNN (the `onednn-cpu-gomp` wheel, the library behind PyTorch's CPU
convolutions) runs all three directions at several times XLA's speed on
channels-last tensors, with no copies of the activations. `conv3d` is a
VALID strided 3D convolution with a custom VJP whose forward, input gradient
and kernel gradient are the three targets of `dnnl_conv3d.cc`.

The oneDNN wheels are the `kernels` extra (`pip install -e '.[kernels]'`);
`make kernels` (`python -m videopoet.kernels`: `main`) compiles the C++
side with g++, its warnings on, into a cache folder (`$VIDEOPOET_CACHE_DIR`,
else `~/.cache/videopoet-jax`), under a name that hashes the source, the
jaxlib and oneDNN versions and the compiler command (with oneDNN's path,
the library's rpath). Nothing is
compiled on import or first use: `status()` says whether that library is
there and loads, and where not why (extra not installed, not built for this
source and versions, failed to load, or `VIDEOPOET_DNNL=0`); `kernels`
then logs it once and runs its XLA forms.

Several CPU devices in one mesh (`--xla_force_host_platform_device_count`)
are correct but gain nothing: XLA's SPMD partitioner gathers a custom call's
operands onto every device. Real meshes are GPUs and TPUs, where
`kernels.conv3d` never takes this path.

  python -m videopoet.kernels   # build now, print path
"""

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
# Warnings on for our source; the headers of oneDNN and XLA's FFI are
# included as system headers (their own warnings are not ours to fix).
WARNINGS = ("-Wall", "-Wextra")


class BuildError(RuntimeError):
  """The oneDNN kernels cannot be built here (the message says why)."""


class NotInstalled(BuildError):
  """The `kernels` extra (the oneDNN wheels) is not installed here."""


def _dist_file(dist: str, name: str) -> pathlib.Path:
  """The installed file of `dist` whose path ends with `name`."""
  try:
    files = importlib.metadata.files(dist) or ()
  except importlib.metadata.PackageNotFoundError as e:
    raise NotInstalled(
        f"the {dist!r} wheel is not installed (the `kernels` extra)"
    ) from e
  for f in files:
    if str(f).replace("\\", "/").endswith(name):
      return pathlib.Path(f.locate()).resolve()
  raise BuildError(f"the {dist!r} wheel has no {name!r}")


def extra_installed() -> bool:
  """Whether the `kernels` extra is installed: both oneDNN wheels, on the
  platform they are for (Linux x86-64)."""
  if sys.platform != "linux" or platform.machine() != "x86_64":
    return False
  try:
    for dist in (_DIST, _DEVEL_DIST):
      importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return False
  return True


def _cache_dir() -> pathlib.Path:
  root = os.environ.get("VIDEOPOET_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "videopoet-jax"
  )
  return pathlib.Path(root)


def _plan() -> tuple[pathlib.Path, list[str]]:
  """(library path, g++ command without its output) for this environment.

  Raises:
    NotInstalled: not Linux x86-64 or no oneDNN wheels.
    BuildError: no g++ (or $CXX).
  """
  if sys.platform != "linux" or platform.machine() != "x86_64":
    raise NotInstalled(
        f"oneDNN wheels are for Linux x86-64, not {sys.platform}"
        f" {platform.machine()}"
    )
  lib = _dist_file(_DIST, "/libdnnl.so.3")
  header = _dist_file(_DEVEL_DIST, "/oneapi/dnnl/dnnl.hpp")
  include = header.parents[2]  # .../include
  versions = (
      f"{importlib.metadata.version('jaxlib')}"
      f"-{importlib.metadata.version(_DIST)}"
  )
  cmd = [
      os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC",
      *WARNINGS, str(_SOURCE), f"-isystem{include}",
      f"-isystem{jax.ffi.include_dir()}", str(lib),
      f"-Wl,-rpath,{lib.parent}",
  ]  # fmt: skip
  # The command holds the library's path too: the build's rpath points into
  # that environment.
  key = f"{versions}:{' '.join(cmd)}".encode()
  digest = hashlib.sha256(_SOURCE.read_bytes() + key).hexdigest()
  return _cache_dir() / f"dnnl_conv3d-{digest[:16]}.so", cmd


def library_path() -> pathlib.Path:
  """Where `build()` puts the library for this source and environment."""
  return _plan()[0]


def build(echo=None) -> pathlib.Path:
  """Compiles `dnnl_conv3d.cc` (if not cached) and returns the library's path.

  Args:
    echo: called with the compiler's diagnostics (its warnings) if any.

  Raises:
    NotInstalled: not Linux x86-64 or no oneDNN wheels.
    BuildError: no g++, or g++ failed (its output in the message).
  """
  out, cmd = _plan()
  if out.exists():
    return out
  if shutil.which(cmd[0]) is None:
    raise BuildError(f"no C++ compiler ({cmd[0]!r}, from $CXX or g++)")
  out.parent.mkdir(parents=True, exist_ok=True)
  # Compiled beside its final name, then renamed: concurrent builders each
  # write their own file and the last rename wins, whole.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
  os.close(fd)
  cmd = [*cmd, "-o", tmp]
  done = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    os.unlink(tmp)
    raise BuildError(
        f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    )
  if done.stderr and echo is not None:
    echo(done.stderr)
  os.replace(tmp, out)
  return out


@functools.cache
def status() -> tuple[str, str]:
  """(state, reason): state "ok" (targets loaded and registered, once),
  "disabled" (`VIDEOPOET_DNNL=0`), "not_installed" (no `kernels` extra),
  "not_built" (no library for this source and versions: `make kernels`)
  or "failed" (it did not load)."""
  if os.environ.get("VIDEOPOET_DNNL", "1") == "0":
    return "disabled", "VIDEOPOET_DNNL=0"
  try:
    path = library_path()
  except NotInstalled as e:
    return "not_installed", str(e)
  except BuildError as e:
    return "failed", str(e)
  if not path.exists():
    return "not_built", f"{path} is not built: run `make kernels`"
  try:
    library = ctypes.CDLL(str(path))
  except OSError as e:
    return "failed", f"{path} did not load: {e}"
  for name, symbol in _TARGETS.items():
    jax.ffi.register_ffi_target(
        name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
    )
  return "ok", str(path)


@functools.cache
def available() -> bool:
  """Whether the oneDNN targets are loaded (logs where not, once)."""
  state, reason = status()
  if state == "ok":
    logging.info("3D convolutions on oneDNN (XLA FFI targets of %s)", reason)
  elif state in ("disabled", "not_installed"):
    logging.info("oneDNN conv3d %s (%s): XLA forms.", state, reason)
  else:
    logging.warning("oneDNN conv3d %s, XLA forms instead: %s", state, reason)
  return state == "ok"


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
        f"oneDNN conv3d is not available here: {status()[1]}; use"
        " kernels.conv3d, which falls back to the XLA forms"
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


def main() -> int:
  """`make kernels`: builds the library (its warnings shown) and loads it;
  0 without the extra (nothing to build), 1 if it fails."""
  try:
    path = build(echo=lambda text: print(text, file=sys.stderr, end=""))
  except NotInstalled as e:
    print(f"oneDNN conv3d not built ({e}): the XLA forms will be used")
    return 0
  except BuildError as e:
    print(f"oneDNN conv3d build failed: {e}", file=sys.stderr)
    return 1
  state, reason = status()
  if state not in ("ok", "disabled"):
    print(f"oneDNN conv3d built but {state}: {reason}", file=sys.stderr)
    return 1
  print(path)
  return 0
