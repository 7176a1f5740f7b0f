"""The package's layers, read from every module's imports (function-local
ones included): each layer imports only itself and the layers below it, and
no library module imports `configs/`, `experiments/`, `tests/` or
`benchmarks/`.

  0 core        videopoet.{config_lib, sharding, kernels, train_lib, data}
  1 tokenizers  videopoet.tokenizers (MAGVIT-v2, SoundStream, common)
  2 LM          videopoet.{model, tasks, vocab, decode, lm_data, lm_trainer,
                token_spec, text_tokenizer, text_encoder,
                superres}
  3 apps        videopoet.{pretokenize, sampling, eval}
  experiments/ and configs/ sit on top of all of them.
"""

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "videopoet")
LAYERS = (
    ("core", ("config_lib", "sharding", "kernels", "train_lib", "data")),
    ("tokenizers", ("tokenizers",)),
    ("LM", ("model", "tasks", "vocab", "decode", "lm_data", "lm_trainer",
            "token_spec", "text_tokenizer", "text_encoder",
            "superres")),  # fmt: skip
    ("apps", ("pretokenize", "sampling", "eval")),
)
OUTSIDE = ("configs", "experiments", "tests", "benchmarks", "research")


def _layer(module: str) -> int | None:
  """The layer of a `videopoet.*` module (None outside the package or for
  the package's own `__init__`)."""
  parts = module.split(".")
  if parts[0] != "videopoet" or len(parts) < 2:
    return None
  for i, (_, names) in enumerate(LAYERS):
    if parts[1] in names:
      return i
  raise AssertionError(
      f"{module} is in no layer: add videopoet.{parts[1]} to LAYERS"
  )


def _modules():
  for dirpath, _, files in os.walk(PACKAGE):
    for f in sorted(files):
      if f.endswith(".py"):
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, ROOT)[: -len(".py")]
        yield rel.replace(os.sep, ".").removesuffix(".__init__"), path


def _imports(path: str, module: str):
  """Absolute names imported anywhere in the file (relative ones resolved)."""
  tree = ast.parse(open(path, encoding="utf-8").read(), path)
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
      yield from (f"{base}.{a.name}" for a in node.names)


def test_every_layer_imports_only_itself_and_below():
  wrong, count = [], 0
  for module, path in _modules():
    mine = _layer(module)
    for name in _imports(path, module):
      count += 1
      if name.split(".")[0] in OUTSIDE:
        wrong.append(f"{module} imports {name} (outside the library)")
        continue
      theirs = _layer(name)
      if mine is not None and theirs is not None and theirs > mine:
        wrong.append(
            f"{module} ({LAYERS[mine][0]}) imports {name}"
            f" ({LAYERS[theirs][0]})"
        )
  assert count > 500  # The walk saw the package.
  assert not wrong, "\n".join(wrong)


def test_the_layer_check_catches_an_upward_import(tmp_path):
  """The checker itself: a core module importing the LM is found."""
  path = tmp_path / "bad.py"
  path.write_text("def f():\n  from videopoet.model import transformer\n")
  names = list(_imports(str(path), "videopoet.train_lib.bad"))
  assert names == ["videopoet.model.transformer"]
  assert _layer(names[0]) > _layer("videopoet.train_lib.bad")
  rel = tmp_path / "pkg" / "__init__.py"
  rel.parent.mkdir()
  rel.write_text("from ...tasks import builders\n")
  assert list(_imports(str(rel), "videopoet.data.pkg")) == [
      "videopoet.tasks.builders"
  ]


def test_importing_the_package_loads_no_tokenizer_and_no_configs():
  code = (
      "import sys, videopoet\n"
      "bad = sorted(m for m in sys.modules if m.startswith("
      "('videopoet.tokenizers', 'configs', 'experiments', 'tensorflow',"
      " 'jax')))\n"
      "print(bad)\n"
  )
  out = subprocess.run(
      [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
      check=True,
  ).stdout  # fmt: skip
  assert out.strip() == "[]", out
