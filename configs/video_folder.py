r"""Builds `video_folder`: your own clips (mp4/mkv/avi/...) as a TFDS dataset.

  python -m experiments.build_data --config=configs/video_folder.py:square \
      --config.data.manual_dir=FOLDER --config.data.data_dir=DIR \
      [--config.dataset.fps=4]

Args (the `:arg` suffix): `square` (default, 128x128) or `portrait` (height
224, width 128: VideoPoet's 128x224 portrait clips). Both cut 17 frames at
8 fps (2.125 s) with 16 kHz mono audio. The build lands in
DIR/video_folder/<name>/1.0.0 with `build_report.txt` naming every file
that was skipped and why. See `videopoet/data/video_folder.py` (clips) and
`videopoet/data/video_folder_tfds.py` (the build).
"""

import ml_collections

from configs import common

# (height, width) of each arg.
_SIZES = {"square": (128, 128), "portrait": (224, 128)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The build config for `arg` in {'square', 'portrait'}."""
  arg = arg or "square"
  if arg not in _SIZES:
    raise ValueError(
        f"unknown config arg {arg!r}; allowed: {', '.join(_SIZES)}"
    )
  height, width = _SIZES[arg]
  config = ml_collections.ConfigDict()
  # TFDS name video_folder/<config>: the build goes to
  # DIR/video_folder/<config>/1.0.0; manual_dir is the folder of clips.
  config.data = common.data(f"video_folder/{arg}", manual_dir="")

  # Fields of `videopoet.data.video_folder.VideoFolderConfig`.
  config.dataset = ml_collections.ConfigDict()
  # Clip height in pixels: the short side is scaled, then centre cropped.
  config.dataset.height = height
  # Clip width in pixels.
  config.dataset.width = width
  # Frame rate of the clips; files are resampled to it (nearest frame).
  config.dataset.fps = 8
  # Frames per clip: 17 at 8 fps is VideoPoet's 2.125 s (5 latent frames).
  config.dataset.num_frames = 17
  # Frames between clip starts at `fps`; 0 = num_frames (back to back),
  # smaller overlaps clips (more clips per video).
  config.dataset.clip_stride = 0
  # Audio rate in Hz (SoundStream's 16 kHz); each clip gets exactly its
  # duration of samples, silence where the file has no audio.
  config.dataset.sample_rate = 16000
  # At most this many clips from one file (0 = no limit); caps long videos
  # and stops decoding them early.
  config.dataset.max_clips_per_video = 0
  # File name endings taken as videos, any letter case (every container
  # PyAV reads that users have); other files are listed in the build report.
  config.dataset.extensions = (
      ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg",
      ".flv", ".ts", ".mts", ".m2ts", ".wmv", ".3gp", ".ogv", ".gif",
  )  # fmt: skip
  return config
