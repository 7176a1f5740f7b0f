r"""Writes a folder of spoken sentences (espeak-ng) for the codec's speech run.

  apt-get install -y espeak-ng
  python -m experiments.make_speech --config=configs/make_speech.py \
      --out_dir=runs/speech [--config.num=600]

Each WAV (16 kHz mono) is one random sentence from a small grammar, spoken
by one of several espeak-ng voices at a random speed and pitch. Sentences
and settings follow from `config.seed`, so the folder is reproducible. The
codec's `wav_folder` source splits files by a hash of their name (10 % test),
so test sentences are never trained on.
"""

import os
import shutil
import subprocess

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np

from videopoet.data import media

_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for the WAV files.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/make_speech.py", "configs/make_speech.py",
    lock_config=True,
)  # fmt: skip

VOICES = (
    "en-us",
    "en-gb",
    "en-us+f3",
    "en-gb+m3",
    "en-us+f5",
    "en-us+m7",
    "en-sc",
    "en-us+f2",
)
SUBJECTS = (
    "the red circle",
    "a small square",
    "my neighbour",
    "the old man",
    "a yellow triangle",
    "the teacher",
    "our little dog",
    "the pilot",
    "a blue bird",
    "the quiet child",
    "every student",
    "the baker",
)
VERBS = (
    "moves slowly to",
    "jumps over",
    "looks at",
    "bounces off",
    "runs toward",
    "carefully paints",
    "quietly watches",
    "follows",
    "sings about",
    "forgets",
    "carries",
    "waits beside",
)
OBJECTS = (
    "the bright window",
    "a wooden table",
    "the river bank",
    "seven green apples",
    "the noisy station",
    "a paper boat",
    "the tall mountain",
    "an empty garden",
    "the morning train",
    "a silver spoon",
    "the distant village",
    "twelve orange balloons",
)
ENDINGS = (
    "",
    " before the sun goes down",
    " every single Tuesday",
    " while it rains",
    " and then stops",
    " without a sound",
    " in the middle of the night",
    " as fast as possible",
)


def sentences(num: int, seed: int):
  """(text, voice, speed wpm, pitch 0..99) for each file."""
  rng = np.random.default_rng(seed)
  pick = lambda xs: xs[rng.integers(len(xs))]
  for _ in range(num):
    text = (
        f"{pick(SUBJECTS)} {pick(VERBS)} {pick(OBJECTS)}" f"{pick(ENDINGS)}."
    ).capitalize()
    yield text, pick(VOICES), int(rng.integers(130, 200)), int(
        rng.integers(30, 70)
    )


def main(argv):
  del argv
  espeak = shutil.which("espeak-ng")
  if espeak is None:
    raise SystemExit("espeak-ng is not installed (apt-get install espeak-ng)")
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  for i, (text, voice, speed, pitch) in enumerate(
      sentences(_CONFIG.value.num, _CONFIG.value.seed)
  ):
    raw = os.path.join(_OUT_DIR.value, f"raw_{i:05d}.wav")
    subprocess.run(
        [
            espeak,
            "-v",
            voice,
            "-s",
            str(speed),
            "-p",
            str(pitch),
            "-w",
            raw,
            text,
        ],
        check=True,
    )
    audio = media.read_audio(raw, 16000)
    os.remove(raw)
    peak = np.max(np.abs(audio)) + 1e-9
    media.write_wav(
        os.path.join(_OUT_DIR.value, f"speech_{i:05d}.wav"),
        0.9 * audio / peak,
        16000,
    )
  print(f"wrote {_CONFIG.value.num} sentences to {_OUT_DIR.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["out_dir"])
  app.run(main)
