"""Structure videos for stylization: optical flow + relative depth.

VideoPoet's stylization task conditions on a "structure" video: RAFT optical
flow and MiDaS depth of the target clip, encoded by the video tokenizer like
any clip. Here:

- `synth_av` stores exact flow and depth maps; `tokenize_data` uses those.
- Any other dataset (`video_folder`) gets dense optical flow from OpenCV's
  Farneback method (`farneback_flow`) and, when `config.depth_model` names a
  local TorchScript file, depth from that network (`DepthEstimator`: e.g. a
  MiDaS or Depth Anything model exported with `torch.jit.trace`). Without
  one, the depth channel is 0 and the job says so once in its log.

`structure_video` turns flow [t, h, w, 2] + depth [t, h, w] into the 3-channel
clip in [-1, 1] that the video tokenizer encodes. One home for the
conventions: flow is forward (frame t -> t + 1, zero at the last frame) in
pixels, depth is relative and higher = nearer (MiDaS's inverse depth; synth_av
layer ids).
"""

import os

import numpy as np

# ImageNet statistics: the input normalization of MiDaS and Depth Anything.
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def structure_video(
    flow: np.ndarray, depth: np.ndarray, flow_scale: float
) -> np.ndarray:
  """Flow [t, h, w, 2] + depth [t, h, w] -> float32 [t, h, w, 3] in [-1, 1].

  Flow is clipped at +-`flow_scale` pixels per frame. Depth (>= 0, higher =
  nearer) is relative per clip: 0 -> -1, the clip's largest value -> +1
  (values below 1 are taken as already in [0, 1]).
  """
  flow = np.clip(np.asarray(flow, np.float32) / flow_scale, -1.0, 1.0)
  depth = np.asarray(depth, np.float32)
  depth = 2.0 * depth / max(float(depth.max()), 1.0) - 1.0
  return np.concatenate([flow, depth[..., None]], axis=-1)


def farneback_flow(video: np.ndarray) -> np.ndarray:
  """Dense forward optical flow of uint8 RGB `video` [t, h, w, 3].

  Returns float32 [t, h, w, 2] (dx, dy) in pixels: frame t's pixel (x, y)
  moves to (x + dx, y + dy) in frame t + 1; the last frame's flow is 0 (as
  synth_av's). OpenCV's Farneback with a 3-level pyramid, 15-pixel windows.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  video = np.asarray(video)
  if video.ndim != 4 or video.shape[-1] != 3:
    raise ValueError(f"video must be [t, h, w, 3] RGB, got {video.shape}")
  gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video.astype(np.uint8)]
  flow = np.zeros(video.shape[:3] + (2,), np.float32)  # [t, h, w, 2]
  for t in range(len(gray) - 1):
    flow[t] = cv2.calcOpticalFlowFarneback(
        gray[t], gray[t + 1], None, pyr_scale=0.5, levels=3, winsize=15,
        iterations=3, poly_n=5, poly_sigma=1.2, flags=0,
    )  # fmt: skip
  return flow


class DepthEstimator:
  """Relative depth from a local TorchScript monocular depth network.

  The network takes float32 [n, 3, size, size] RGB normalized with ImageNet
  mean/std (MiDaS's and Depth Anything's convention) and returns [n, H, W]
  or [n, 1, H, W] relative inverse depth (higher = nearer). Frames are
  resized to `input_size` (a multiple of 32: 256 for MiDaS v2.1 small), the
  prediction is resized back and normalized per clip to [0, 1].
  """

  def __init__(self, path: str, input_size: int = 256, batch_size: int = 8):
    if not path:
      raise ValueError("DepthEstimator needs the path of a TorchScript model")
    if not os.path.exists(path):
      raise FileNotFoundError(
          f"config.depth_model={path!r} does not exist (a TorchScript depth"
          " network, e.g. MiDaS exported with torch.jit.trace; '' to leave"
          " the depth channel at 0)"
      )
    if input_size % 32:
      raise ValueError(f"depth input_size={input_size} is not a multiple of 32")
    import torch  # pylint: disable=g-import-not-at-top

    self._torch = torch
    self.model = torch.jit.load(path, map_location="cpu").eval()
    self.path, self.input_size, self.batch_size = path, input_size, batch_size

  def __call__(self, video: np.ndarray) -> np.ndarray:
    """uint8 RGB [t, h, w, 3] -> float32 [t, h, w] in [0, 1], higher = nearer."""
    torch = self._torch
    import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

    t, h, w, _ = video.shape
    x = (np.asarray(video, np.float32) / 255.0 - _MEAN) / _STD
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    out = []
    with torch.inference_mode():
      for lo in range(0, t, self.batch_size):
        chunk = x[lo : lo + self.batch_size]
        if chunk.shape[-2:] != (self.input_size, self.input_size):
          chunk = F.interpolate(
              chunk, size=(self.input_size,) * 2, mode="bicubic",
              align_corners=False,
          )  # fmt: skip
        pred = self.model(chunk)
        pred = pred[:, None] if pred.ndim == 3 else pred  # [n, 1, H', W']
        if pred.ndim != 4 or pred.shape[1] != 1:
          raise ValueError(
              f"depth model {self.path} returned {tuple(pred.shape)}; expected"
              " [n, H, W] or [n, 1, H, W]"
          )
        if pred.shape[-2:] != (h, w):
          pred = F.interpolate(
              pred, size=(h, w), mode="bilinear", align_corners=False
          )
        out.append(pred[:, 0].float().numpy())
    depth = np.concatenate(out)  # [t, h, w]
    lo, hi = float(depth.min()), float(depth.max())
    return (depth - lo) / max(hi - lo, 1e-8)
