"""One trainer contract: what every model family hands `train_lib`.

A family (the MAGVIT-v2 video tokenizer, the SoundStream codec, the LM) is
described by one `Family` value, and every family is trained, resumed,
evaluated and loaded the same way:

  run(FAMILY, config, workdir)            # experiments.train*: train/resume
  evaluate(FAMILY, config, workdir)       # a checkpoint on config's eval
  FAMILY.load(workdir, step=None)         # the trained model, params only

`run` is what each family's job did on its own before:

  1. `FAMILY.parse(config)`: the whole ml_collections config into the
     family's typed config; a bad key or value is named
     (`config_lib.ConfigError`) before anything is written;
  2. `FAMILY.check_workdir(config, workdir)` (optional; the LM's tokens);
  3. the mesh, and `config.json` checked and written by the workdir rules
     (`workdir.check_config`: a changed model or data config is refused,
     `FAMILY.resumable` names what a resume may change);
  4. `FAMILY.write_workdir(config, workdir)` (optional; the LM's tokens.json);
  5. `FAMILY.make_program(parsed, mesh)` handed to `harness.train`.

Phases: a family whose step changes with the step count (a GAN that starts
late, a lazy regularizer) names its step programs in `phases(parsed)` and
the one of each step in `phase_of(parsed, step)`; its program's data yields
`(phase, batch)` (`data.PhasedBatches`) and its `groups` are those phases.
A family with one step program has one phase, `SINGLE_PHASE`.

This module sits in the core: the families import it, never the reverse.
"""

import dataclasses
from typing import Any, Callable, Generic, TypeVar

import jax
import ml_collections

from videopoet import config_lib
from videopoet import sharding
from videopoet.train_lib import harness
from videopoet.train_lib import loading
from videopoet.train_lib import workdir as workdir_lib

C = TypeVar("C")  # A family's typed config (what `parse` returns).
ConfigDict = ml_collections.ConfigDict
SINGLE_PHASE = ("train",)


def one_phase(parsed: Any) -> tuple[str, ...]:
  """`Family.phases` of a family with one step program."""
  del parsed
  return SINGLE_PHASE


def always_the_phase(parsed: Any, step: int) -> str:
  """`Family.phase_of` of a family with one step program."""
  del parsed, step
  return SINGLE_PHASE[0]


@dataclasses.dataclass(frozen=True)
class Loaded:
  """A family's trained parameters as `load` reads them (no optimizer)."""

  step: int
  params: Any


@dataclasses.dataclass(frozen=True)
class Family(Generic[C]):
  """How a model family is trained, evaluated and loaded.

  Attributes:
    name: the workdir family (`workdir.FAMILIES`: 'video_tokenizer',
      'audio_codec', 'lm'): what `read_family_config` / `find_workdir`
      check a workdir's config.json against.
    parse: `config -> C`, the typed config; raises `config_lib.ConfigError`
      naming the bad key. Reads nothing from the workdir, writes nothing.
      `C` has a `trainer` attribute, the harness's `TrainerConfig`.
    make_program: `(parsed, mesh) -> harness.Program`.
    phases: `parsed -> names` of the step programs a run compiles.
    phase_of: `(parsed, step) -> name` of the program of the step whose
      state has `step` (counting from 0).
    load: `(workdir, step=None) -> model`: the trained model of a workdir
      (or of one of its `checkpoints/<step>`), its parameters only, read
      through `train_lib.loading`; the result has a `step` attribute.
    eval_keys: the train-state entries `Program.evaluate` reads (what
      `evaluate` restores from a checkpoint).
    check_workdir: optional `(config, workdir)` check of files beside
      config.json, run after `parse` and before anything is written.
    write_workdir: optional `(config, workdir)` run after config.json is
      written (files the loaders need beside it).
    resumable: config keys (fnmatch patterns) a resume may change.
  """

  name: str
  parse: Callable[[ConfigDict], C]
  make_program: Callable[[C, jax.sharding.Mesh], harness.Program]
  load: Callable[..., Any]
  eval_keys: tuple[str, ...]
  phases: Callable[[C], tuple[str, ...]] = one_phase
  phase_of: Callable[[C, int], str] = always_the_phase
  check_workdir: Callable[[ConfigDict, str], None] | None = None
  write_workdir: Callable[[ConfigDict, str], Any] | None = None
  resumable: tuple[str, ...] = workdir_lib.RESUMABLE

  def __post_init__(self):
    if self.name not in workdir_lib.FAMILIES:
      raise ValueError(
          f"family {self.name!r} is not one of {sorted(workdir_lib.FAMILIES)}"
          " (train_lib.workdir.FAMILIES)"
      )

  @property
  def job(self) -> str:
    """The module that trains this family (`python -m <job>`)."""
    return workdir_lib.FAMILIES[self.name][2]

  def find_workdir(self, path: str) -> tuple[str, int | None]:
    """`loading.find_workdir` for this family's workdirs."""
    return loading.find_workdir(path, self.name, self.job)


def parse_trainer(config: ConfigDict) -> harness.TrainerConfig:
  """`config.trainer`, the harness's section every family's config has."""
  return config_lib.from_config(
      harness.TrainerConfig, config.trainer, "config.trainer"
  )


def make_mesh(config: ConfigDict) -> jax.sharding.Mesh:
  return sharding.create_mesh(
      config_lib.from_config(sharding.MeshConfig, config.mesh, "config.mesh")
  )


def run(family: Family, config: ConfigDict, workdir: str):
  """Trains (or resumes) `config` of `family` in `workdir`.

  The config is parsed (every section the family reads) and the workdir
  checked before anything is written; then `config.json` is written (or a
  resume's allowed changes recorded), the program built and trained.

  Returns:
    The final train state.

  Raises:
    config_lib.ConfigError: a bad key or value (named).
    workdir.WorkdirConfigError: the workdir holds a run of another model or
      data config (nothing is written).
  """
  parsed = family.parse(config)
  if family.check_workdir is not None:
    family.check_workdir(config, workdir)
  trainer, mesh = harness.setup(config, workdir, family.resumable)
  if family.write_workdir is not None:
    family.write_workdir(config, workdir)
  return harness.train(
      trainer, mesh, workdir, family.make_program(parsed, mesh)
  )


def evaluate(
    family: Family,
    config: ConfigDict,
    workdir: str,
    step: int | None = None,
) -> dict[str, float]:
  """The program's evaluation of a checkpoint of `workdir` (default latest).

  The program (and so its evaluation data) is built from `config`, so a run
  can be evaluated on other settings; only `family.eval_keys` are read from
  the checkpoint. Returns `{metric: value}` with the checkpoint's `step`.
  """
  parsed = family.parse(config)
  workdir, in_path = family.find_workdir(workdir)
  mesh = make_mesh(config)
  program = family.make_program(parsed, mesh)
  if program.evaluate is None:
    raise config_lib.ConfigError(
        f"the {family.name} program of this config evaluates nothing (see"
        " its eval settings)"
    )
  step, trees = loading.restore_params(
      workdir, family.eval_keys, step if step is not None else in_path
  )
  with jax.set_mesh(mesh):
    out = {k: float(v) for k, v in program.evaluate(trees, step).items()}
  out["step"] = step
  return out
