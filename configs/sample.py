"""The offline sampling job: `configs/sample.py:<arg>`.

  python -m experiments.sample --config=configs/sample.py \\
      --workdir=runs/samples --config.lm=runs/lm \\
      --config.prompts=prompts.jsonl

Args: '' (the defaults below) or 'demo' (what `make demo` runs: greedy-ish
low temperature for a 20-minute CPU LM, two samples of nothing).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or "default"
  if arg not in ("default", "demo"):
    raise ValueError(f"unknown variant {arg!r}; allowed: default, demo")
  c = ml_collections.ConfigDict()
  c.lm = ""  # The LM's workdir (experiments.train).
  c.step = 0  # Its checkpoint (0: the latest).
  c.prompts = ""  # JSON lines, see videopoet/sampling/requests.py.
  # Defaults for every request (a request may override each). VideoPoet
  # does not publish its sampling settings; these follow the public
  # decoders in ../shared/docs/reference/sampling_anchors.md (top-k
  # sampling at temperature 1, guidance for the text tasks).
  c.sampling = dict(temperature=1.0, top_k=0, top_p=1.0, guidance=1.0)
  c.force_visible = True  # In/outpainting keep the visible cells' ids.
  c.context_seconds = 1.0  # Long video continues on the last second.
  c.max_num_samples = 16
  c.formats = ("mp4", "gif", "png", "wav")
  c.depth_model = ""  # TorchScript depth net for stylization ('': 0).
  c.mesh = dict(data=-1, fsdp=1, tensor=1)  # Each process's local devices.
  # Super-resolution: comma-separated workdirs of experiments.train_superres
  # applied in order to every video output (each doubles height and width;
  # '' : none), and their MaskGIT settings (VideoPoet: 24 steps; text
  # guidance 4 / 8 and low-resolution guidance 1 / 2 for stages 1 / 2).
  c.superres = ""
  c.superres_sampling = dict(
      steps=24, temperature=1.0, choice_temperature=4.5, guidance_text=4.0,
      guidance_low=1.0,
  )
  if arg == "demo":
    # An LM trained for minutes on CPU: a lower temperature and top-k keep
    # the samples on the tokens it has seen most.
    c.sampling = dict(temperature=0.8, top_k=64, top_p=1.0, guidance=1.0)
  return c
