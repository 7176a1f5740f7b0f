"""Structure clips for stylization: Farneback flow, the TorchScript depth
network, and `tokenize_data` on a dataset without flow/depth maps
(`video_folder`)."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import tokenize_data as tokenize_configs
from videopoet import lm_data
from videopoet import text_tokenizer
from videopoet import pretokenize
from videopoet.data import datasets
from videopoet.data import media
from videopoet.data import structure
from videopoet.data import video_folder
from videopoet.data import video_folder_tfds


def _texture(h, w, seed=0):
  """A smooth random RGB texture [h, w, 3] uint8 (trackable by Farneback)."""
  rng = np.random.default_rng(seed)
  small = rng.uniform(0, 255, (h // 4 + 2, w // 4 + 2, 3))
  big = np.kron(small, np.ones((4, 4, 1)))  # Blocks, then a blur.
  k = np.ones(5) / 5
  for axis in (0, 1):
    big = np.apply_along_axis(lambda v: np.convolve(v, k, "same"), axis, big)
  return big[:h, :w].astype(np.uint8)


def _panning(frames, h, w, dx, dy):
  """frames [t, h, w, 3]: a texture moving (dx, dy) pixels per frame."""
  m = frames * max(dx, dy) + 1
  tex = _texture(h + 2 * m, w + 2 * m)
  out = []
  for t in range(frames):
    y0, x0 = m - t * dy, m - t * dx  # Content moves +dx, +dy.
    out.append(tex[y0 : y0 + h, x0 : x0 + w])
  return np.stack(out)


def test_farneback_flow_recovers_a_pan():
  video = _panning(5, 64, 64, dx=2, dy=1)
  flow = structure.farneback_flow(video)
  assert flow.shape == (5, 64, 64, 2) and flow.dtype == np.float32
  inner = flow[:-1, 16:-16, 16:-16].reshape(-1, 2)
  np.testing.assert_allclose(np.median(inner, 0), [2.0, 1.0], atol=0.25)
  assert not flow[-1].any()  # Forward flow: none out of the last frame.
  with pytest.raises(ValueError, match="RGB"):
    structure.farneback_flow(video[..., 0])


def test_structure_video_channels_and_range():
  flow = np.full((3, 4, 4, 2), 8.0, np.float32)
  flow[..., 1] = -1.0
  depth = np.zeros((3, 4, 4), np.uint8)
  depth[:, :2] = 2
  s = structure.structure_video(flow, depth, flow_scale=4.0)
  assert s.shape == (3, 4, 4, 3) and s.dtype == np.float32
  np.testing.assert_array_equal(s[..., 0], 1.0)  # 8 px clipped at 4 px.
  np.testing.assert_array_equal(s[..., 1], -0.25)
  np.testing.assert_array_equal(s[:, :2, :, 2], 1.0)  # Nearest layer: +1.
  np.testing.assert_array_equal(s[:, 2:, :, 2], -1.0)  # Background: -1.


def _torchscript(tmp_path, module, name):
  torch = pytest.importorskip("torch")
  path = str(tmp_path / name)
  torch.jit.trace(module, torch.zeros(1, 3, 32, 32)).save(path)
  return path


def _red_depth(tmp_path):
  """A 'depth network' that returns the normalized red channel [n, H, W]."""
  torch = pytest.importorskip("torch")

  class Red(torch.nn.Module):

    def forward(self, x):
      return x[:, 0] * 2.0 + 1.0  # Any affine map: depth is relative.

  return _torchscript(tmp_path, Red(), "red.pt")


def test_depth_estimator_runs_the_network_on_normalized_frames(tmp_path):
  video = _panning(6, 32, 32, 1, 0)
  est = structure.DepthEstimator(_red_depth(tmp_path), input_size=32,
                                 batch_size=4)  # fmt: skip
  depth = est(video)
  assert depth.shape == (6, 32, 32) and depth.dtype == np.float32
  red = video[..., 0].astype(np.float32)
  want = (red - red.min()) / (red.max() - red.min())  # Per clip, not frame.
  np.testing.assert_allclose(depth, want, atol=1e-5)


def test_depth_estimator_resizes_and_checks_its_output(tmp_path):
  torch = pytest.importorskip("torch")

  class Half(torch.nn.Module):  # [n, 1, H/2, W/2], like a strided head.

    def forward(self, x):
      return torch.nn.functional.avg_pool2d(x[:, :1], 2)

  est = structure.DepthEstimator(
      _torchscript(tmp_path, Half(), "half.pt"), input_size=64
  )
  depth = est(_panning(3, 24, 40, 1, 1))  # Any frame size: resized back.
  assert depth.shape == (3, 24, 40)
  assert depth.min() == 0.0 and depth.max() == 1.0

  class Flat(torch.nn.Module):

    def forward(self, x):
      return x.flatten(1)

  bad = structure.DepthEstimator(_torchscript(tmp_path, Flat(), "flat.pt"), 32)
  with pytest.raises(ValueError, match=r"expected \[n, H, W\]"):
    bad(_panning(2, 32, 32, 1, 0))
  with pytest.raises(FileNotFoundError, match="config.depth_model"):
    structure.DepthEstimator(str(tmp_path / "missing.pt"))
  with pytest.raises(ValueError, match="multiple of 32"):
    structure.DepthEstimator(_red_depth(tmp_path), input_size=100)


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
  """A 32x32 video_folder build of two panning clips, and a text model."""
  root = tmp_path_factory.mktemp("structure")
  clips = root / "clips"
  media.write_mp4(str(clips / "pan.mp4"), _panning(34, 32, 32, 1, 0), 8)
  media.write_mp4(str(clips / "tilt.mp4"), _panning(17, 32, 32, 0, 1), 8)
  tfds.disable_progress_bar()
  data_dir = str(root / "data")
  config = video_folder.VideoFolderConfig(height=32, width=32)
  video_folder_tfds.build(config, data_dir, str(clips), name="square")
  sp = text_tokenizer.train(["a pan", "a tilt", "clip"] * 8, str(root / "t"), 40)
  return root, data_dir, sp


@pytest.mark.parametrize("with_depth", [False, True])
def test_tokenize_video_folder_writes_structure(folder_data, with_depth):
  root, data_dir, sp = folder_data
  depth_model = _red_depth(root) if with_depth else ""
  cfg = pretokenize.TokenizeConfig(
      data=datasets.DataConfig("video_folder/square", data_dir),
      splits=("train",),
      text_tokenizer=sp, random_init=True,
      random=pretokenize.RandomInitConfig(**tokenize_configs.random_tokenizers()), batch_size=2, audio_levels=0,
      depth_model=depth_model, depth_input_size=32,
  )  # fmt: skip
  tok = pretokenize.load_tokenizers(cfg)
  out = str(root / f"tokens_{with_depth}")
  stats = pretokenize.tokenize_split(cfg, tok, "train", out)
  assert stats["encoded"] == 3  # 2 clips of pan.mp4, 1 of tilt.mp4.
  src = lm_data.ArrayRecordSource(out, "train")
  recs = [src[i] for i in range(len(src))]
  assert all(r["structure"].shape == r["video"].shape for r in recs)
  assert all(r["structure"].max() < 2**tok.visual_bits for r in recs)
  # The structure clip is the encoded flow + depth of the clip itself.
  clips = tfds.data_source("video_folder/square", split="train",
                           data_dir=data_dir)  # fmt: skip
  video = np.asarray(clips[0]["video"])[: cfg.num_frames]
  flow = structure.farneback_flow(video)
  depth = tok.depth(video) if with_depth else np.zeros(video.shape[:3])
  want = structure.structure_video(flow, depth, cfg.flow_scale)
  codes = np.asarray(tok.encode_video(want[None]))[0]
  np.testing.assert_array_equal(recs[0]["structure"], codes)
  if with_depth:
    assert tok.metadata["depth_model"] == os.path.abspath(depth_model)
