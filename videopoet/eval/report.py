"""The outputs of an eval sweep, from its cell JSONs (`videopoet.eval.sweep`).

results.csv    one row per cell: cell id, row (the LM's tag, or
               `ground_truth` / `shuffled` / `tokenizer`), lm, step, task, split,
               temperature, top_k, top_p, guidance, n (samples scored),
               status, seconds, then one column per metric mean (empty
               where a task has no such metric), reason (a failed cell's,
                 or how many of its examples failed and why).
results.md     a markdown table per task: the reference rows first.
plots/<task>.<metric>.vs_<guidance|step>.png
               each metric against guidance and against training step
               (one line per LM / split / other settings; the reference
               rows as horizontal lines), only where the x axis has at
               least two values (a single point makes no plot).
report.html    the tables, the plots and, per task, a grid of playable
               samples (<video controls>, the MP4 with its soundtrack)
               beside their prompt, input and the ground-truth clip; every
               path relative to the workdir. An inline script (the
               first thing in <head>) fills
               <pre id="selfcheck"> with what the page sees once loaded
               (script and resource errors, tables, each video's
               duration and audio); opened as `report.html#selfcheck`
               it first plays each video muted for a moment (Chromium
               counts decoded audio only while playing).
headline.md    where `config.headline` names (task, metric, target)
               triples: one row per triple and split with each LM's value
               per guidance, the reference rows, and whether the best LM
               value meets the target on test_heldout.
report.png     a screenshot of report.html by headless Chromium, where a
               `chromium` binary is found (else one line saying why).
"""

import csv
import html
import io
import json
import math
import os
import shutil
import subprocess
import time
from typing import Any, Callable


BASE_COLUMNS = (
    "id", "row", "lm", "step", "task", "split", "temperature", "top_k",
    "top_p", "guidance", "n", "status", "seconds",
)  # fmt: skip
PLOTS_DIR = "plots"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome",
                  "google-chrome-stable")  # fmt: skip
# Headless Chromium flags for file:// pages with local media.
CHROMIUM_FLAGS = (
    "--headless=new", "--disable-gpu", "--no-sandbox",
    "--no-first-run", "--no-default-browser-check", "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-file-access-from-files",
    # HTMLMediaElement.audioTracks (an audio track listed in the file).
    "--enable-blink-features=AudioVideoTracks",
)  # fmt: skip


def _atomic_write(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def _metrics_by_task(rows: list[dict]) -> dict[str, list[str]]:
  out: dict[str, dict] = {}
  for r in rows:
    d = out.setdefault(r["task"], {})
    for k in r.get("means", {}):
      d[k] = None
  return {t: list(d) for t, d in out.items()}


def _order(rows: list[dict]) -> list[dict]:
  """Per task: ground_truth, shuffled, tokenizer, then model rows."""
  rank = {"ground_truth": 0, "shuffled": 1, "tokenizer": 2, "model": 3}
  tasks = list(dict.fromkeys(r["task"] for r in rows))
  return sorted(
      rows,
      key=lambda r: (
          tasks.index(r["task"]), rank.get(r["kind"], 3), r.get("label", ""),
          r.get("step") or 0, r["split"], r.get("temperature") or 0,
          r.get("top_k") or 0, r.get("guidance") or 0,
      ),
  )  # fmt: skip


def _reason(r: dict) -> str:
  """Why a cell failed, or which of its examples did (else '')."""
  if r.get("status") == "error":
    return f"failed: {r.get('reason', '')}"
  bad = r.get("failed_examples") or []
  if bad:
    return f"{len(bad)} examples failed, e.g. {bad[0]['reason']}"
  return ""


def _fmt(v: Any, digits: int = 3) -> str:
  if v is None:
    return ""
  if isinstance(v, float):
    if not math.isfinite(v):
      return ""
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") if v % 1 else f"{v:g}"
  return str(v)


# --------------------------------------------------------------------- CSV.
def write_csv(path: str, rows: list[dict]) -> None:
  metrics = list(
      dict.fromkeys(m for ms in _metrics_by_task(rows).values() for m in ms)
  )
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(list(BASE_COLUMNS) + metrics + ["reason"])
  for r in _order(rows):
    base = dict(r, row=r.get("label"), n=r.get("n", 0))
    means = r.get("means", {})
    w.writerow(
        [_fmt(base.get(c), 6) for c in BASE_COLUMNS]
        + [_fmt(means.get(m), 6) for m in metrics]
        + [_reason(r)]
    )
  _atomic_write(path, buf.getvalue())


# ---------------------------------------------------------------- Markdown.
_MD_COLUMNS = (
    ("row", "row"), ("step", "step"), ("split", "split"),
    ("temperature", "T"), ("top_k", "top-k"), ("guidance", "guidance"),
    ("n", "n"),
)  # fmt: skip


def _table_rows(rows: list[dict], metrics: list[str]):
  header = [h for _, h in _MD_COLUMNS] + metrics
  body = []
  for r in rows:
    cells = [_fmt(r.get("label") if k == "row" else r.get(k)) for k, _ in
             _MD_COLUMNS]  # fmt: skip
    if r.get("status") == "error":
      cells += ["—"] * len(metrics)
    else:
      cells += [_fmt(r.get("means", {}).get(m)) for m in metrics]
    body.append((cells, r))
  return header, body


def write_md(path: str, rows: list[dict], title: str) -> None:
  by_task = _metrics_by_task(rows)
  lines = [f"# {title}", ""]
  for task in dict.fromkeys(r["task"] for r in _order(rows)):
    mine = [r for r in _order(rows) if r["task"] == task]
    header, body = _table_rows(mine, by_task[task])
    lines += [f"## {task}", "", "| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]  # fmt: skip
    for cells, _ in body:
      lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in mine if _reason(r)]
    if failed:
      lines.append("")
      for r in failed:
        lines.append(f"- `{r['id']}` {_reason(r)}")
    lines.append("")
  lines.append(
      "Rows: `ground_truth` = the dataset's clips through the oracle (the"
      " ceiling); `shuffled` = clip i scored against the truth of clip i + 1"
      " (chance); `tokenizer` = the clips through an LM's video tokenizer"
      " and audio codec (that LM's ceiling); other rows are LM checkpoints"
      " (workdir tag), n = samples scored."
  )
  _atomic_write(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- Headline.
def _target_met(value: float | None, target: str) -> bool | None:
  """`target` is '>= x' or '<= x' (else None: no target)."""
  parts = target.split()
  if value is None or len(parts) != 2 or parts[0] not in (">=", "<="):
    return None
  bound = float(parts[1])
  return value >= bound if parts[0] == ">=" else value <= bound


def write_headline(path: str, rows: list[dict], headline) -> None:
  """headline.md: one row per (task, metric, split) of `headline` (triples
  task, metric, target such as '>= 0.9' or ''), with each LM checkpoint's
  value per guidance, the reference rows, and whether the best LM value
  meets the target (only on the split the target names: test_heldout)."""
  done = [r for r in rows if r.get("status") == "done"]
  models = sorted({(r["label"], r["step"]) for r in done
                   if r["kind"] == "model"})  # fmt: skip
  guidance = sorted({r["guidance"] for r in done if r["kind"] == "model"})
  splits = [s for s in ("test_heldout", "test")
            if any(r["split"] == s for r in done)]  # fmt: skip
  lm_cols = [(m, g) for m in models for g in guidance]
  refs = ("tokenizer", "ground_truth", "shuffled")
  header = (["task", "metric", "split", "target"]
            + [f"{label} s{step} g{_fmt(g)}" for (label, step), g in lm_cols]
            + ["met", *refs])  # fmt: skip
  lines = ["| " + " | ".join(header) + " |",
           "|" + " --- |" * len(header)]  # fmt: skip

  def value(match) -> float | None:
    vals = [r["means"].get(metric) for r in done if match(r)]
    vals = [v for v in vals if v is not None]
    return vals[0] if vals else None

  for task, metric, target in headline:
    for split in splits:
      here = lambda r: r["task"] == task and r["split"] == split  # pylint: disable=cell-var-from-loop
      lm_vals = [
          value(lambda r, m=m, g=g: here(r) and r["kind"] == "model"
                and (r["label"], r["step"]) == m and r["guidance"] == g)
          for m, g in lm_cols
      ]  # fmt: skip
      known = [v for v in lm_vals if v is not None]
      best = None
      if known:
        best = min(known) if target.startswith("<=") else max(known)
      met = _target_met(best, target) if split == "test_heldout" else None
      ref_vals = [value(lambda r, k=k: here(r) and r["kind"] == k)
                  for k in refs]  # fmt: skip
      cells = [task, metric, split, target if split == "test_heldout" else ""]
      cells += [_fmt(v) for v in lm_vals]
      cells.append({True: "yes", False: "no", None: ""}[met])
      cells += [_fmt(v) for v in ref_vals]
      lines.append("| " + " | ".join(cells) + " |")
  _atomic_write(path, "\n".join(lines) + "\n")


# ------------------------------------------------------------------- Plots.
def _series_key(r: dict, x: str) -> tuple:
  keys = ("label", "step", "split", "temperature", "top_k", "top_p",
          "guidance")  # fmt: skip
  return tuple((k, r.get(k)) for k in keys if k != x)


def _series_name(key: tuple) -> str:
  short = {"label": "", "step": "s", "split": "", "temperature": "T",
           "top_k": "k", "top_p": "p", "guidance": "g"}  # fmt: skip
  return " ".join(f"{short[k]}{_fmt(v)}" for k, v in key if v is not None)


# Reference rows in the plots: (colour, line style).
_REF_LINES = {
    "ground_truth": ("grey", "--"),
    "shuffled": ("tab:red", ":"),
    "tokenizer": ("tab:green", "-."),
}


def write_plots(workdir: str, rows: list[dict]) -> list[str]:
  """PNG plots; returns their paths relative to `workdir`."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  done = [r for r in rows if r.get("status") == "done"]
  written = []
  for task, metrics in _metrics_by_task(done).items():
    models = [r for r in done if r["task"] == task and r["kind"] == "model"]
    refs = [r for r in done if r["task"] == task and r["kind"] != "model"]
    for x in ("guidance", "step"):
      if len({r.get(x) for r in models}) < 2:
        continue  # One point (or none): no plot.
      for metric in metrics:
        series: dict[tuple, list] = {}
        for r in models:
          v = r["means"].get(metric)
          if v is not None:
            series.setdefault(_series_key(r, x), []).append((r[x], v))
        if not series:
          continue
        fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=90)
        for key, points in series.items():
          points.sort()
          ax.plot(*zip(*points), marker="o", label=_series_name(key))
        for r in refs:
          v = r["means"].get(metric)
          if v is not None:
            colour, style = _REF_LINES.get(r["kind"], ("black", "-."))
            ax.axhline(v, color=colour, linestyle=style, linewidth=1,
                       label=f"{r['kind']} {r['split']}")  # fmt: skip
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.set_title(f"{task}: {metric} vs {x}")
        ax.legend(fontsize=6)
        fig.tight_layout()
        rel = os.path.join(PLOTS_DIR, f"{task}.{metric}.vs_{x}.png")
        path = os.path.join(workdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.png"
        fig.savefig(tmp)
        plt.close(fig)
        os.replace(tmp, path)
        written.append(rel)
  return written


# -------------------------------------------------------------------- HTML.
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; font-size: 13px; }
th { background: #f0f0f0; }
tr.ref td { background: #f7f7ff; }
tr.error td { color: #a00; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots img { width: 420px; margin: 2px; border: 1px solid #eee; }
.samples td { vertical-align: top; }
.samples video, .samples img.media { width: 160px; image-rendering: pixelated; }
.prompt { max-width: 16em; font-size: 12px; }
#selfcheck { font-size: 11px; white-space: pre-wrap; }
"""

_SELFCHECK = r"""
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) {
      errors.push("failed to load " + t.tagName.toLowerCase() + " " +
                  (t.currentSrc || t.src || t.getAttribute("src")));
    } else {
      errors.push(String(e.message || e.type));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + e.reason);
  });
  var consoleError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return consoleError.apply(console, arguments);
  };
  function hasAudio(v) {
    return !!(v.mozHasAudio || v.webkitAudioDecodedByteCount > 0 ||
              (v.audioTracks && v.audioTracks.length));
  }
  function finish() {
    var videos = Array.prototype.map.call(
      document.querySelectorAll("video"), function (v) {
        var r = {
          src: v.getAttribute("src"), sound: v.dataset.sound === "1",
          duration: isFinite(v.duration) ? v.duration : null,
          readyState: v.readyState, error: v.error ? v.error.code : null,
          audio: hasAudio(v),
          audioTracks: v.audioTracks ? v.audioTracks.length : null,
          decodedAudioBytes: v.webkitAudioDecodedByteCount === undefined ?
            null : v.webkitAudioDecodedByteCount
        };
        if (!v.paused) { v.pause(); v.currentTime = 0; v.muted = false; }
        return r;
      });
    var images = Array.prototype.filter.call(
      document.querySelectorAll("img"), function (i) {
        return !(i.complete && i.naturalWidth > 0);
      }).map(function (i) { return i.getAttribute("src"); });
    document.getElementById("selfcheck").textContent = JSON.stringify({
      done: true, errors: errors,
      results_tables: document.querySelectorAll("table.results").length,
      broken_images: images, videos: videos
    });
  }
  window.addEventListener("load", function () {
    var play = location.hash === "#selfcheck";
    var videos = document.querySelectorAll("video");
    if (play) {
      Array.prototype.forEach.call(videos, function (v) {
        v.muted = true;
        var p = v.play();
        if (p && p.catch) p.catch(function (e) {
          if (e.name !== "AbortError") errors.push("play: " + e.message);
        });
      });
    }
    setTimeout(finish, play ? 1500 : 0);
  });
})();
"""


def _e(x: Any) -> str:
  return html.escape(str(x), quote=True)


def _media_tag(path: str, sound: bool) -> str:
  if path.endswith(".png"):
    return f'<img class="media" src="{_e(path)}" alt="{_e(path)}">'
  if path.endswith(".wav"):
    return f'<audio controls preload="metadata" src="{_e(path)}"></audio>'
  return (
      f'<video controls preload="auto" playsinline src="{_e(path)}"'
      f' data-sound="{int(sound)}"></video>'
  )


def _settings(r: dict) -> str:
  if r["kind"] != "model":
    return f"{r['kind']}<br>{_e(r['split'])}"
  return (
      f"{r['label']} step {r['step']}<br>{_e(r['split'])}, T={_fmt(r['temperature'])}"
      f" top-k={r['top_k']} guidance={_fmt(r['guidance'])}"
  )


def write_html(path: str, rows: list[dict], plots: list[str], title: str,
               notes: list[str]) -> None:  # fmt: skip
  by_task = _metrics_by_task(rows)
  ordered = _order(rows)
  tasks = list(dict.fromkeys(r["task"] for r in ordered))
  out = [
      "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
      f"<title>{_e(title)}</title><style>{_STYLE}</style>",
      # First, so that it hears every error of the page.
      f"<script>{_SELFCHECK}</script></head><body>",
      f"<h1>{_e(title)}</h1>",
  ]  # fmt: skip
  out += [f"<p>{_e(n)}</p>" for n in notes]
  out.append(
      "<p>Rows: <b>ground_truth</b> = the dataset's clips through the oracle"
      " (its ceiling); <b>shuffled</b> = clip i scored against the truth of"
      " clip i + 1 (chance); <b>tokenizer</b> = the clips through an LM's"
      " video tokenizer and audio codec (that LM's ceiling); other rows are"
      " LM checkpoints. Data:"
      ' <a href="results.csv">results.csv</a>,'
      ' <a href="results.md">results.md</a>.</p>'
  )
  out.append(
      "<p>Tasks: "
      + ", ".join(f'<a href="#{_e(t)}">{_e(t)}</a>' for t in tasks)
      + "</p>"
  )
  for task in tasks:
    mine = [r for r in ordered if r["task"] == task]
    header, body = _table_rows(mine, by_task[task])
    out.append(f'<section id="{_e(task)}"><h2>{_e(task)}</h2>')
    out.append('<table class="results"><thead><tr>')
    out += [f"<th>{_e(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for cells, r in body:
      cls = "error" if r.get("status") == "error" else (
          "ref" if r["kind"] != "model" else "")  # fmt: skip
      title_attr = f' title="{_e(_reason(r) or r["id"])}"'
      out.append(f'<tr class="{cls}"{title_attr}>')
      for i, c in enumerate(cells):
        num = ' class="num"' if i >= len(_MD_COLUMNS) - 1 else ""
        out.append(f"<td{num}>{_e(c)}</td>")
      out.append("</tr>")
    out.append("</tbody></table>")
    failed = [r for r in mine if _reason(r)]
    for r in failed:
      out.append(f'<p class="error">{_e(r["id"])} {_e(_reason(r))}</p>')
    mine_plots = [
        p for p in plots if os.path.basename(p).startswith(task + ".")
    ]
    if mine_plots:
      out.append('<div class="plots">')
      out += [f'<img src="{_e(p)}" alt="{_e(p)}">' for p in mine_plots]
      out.append("</div>")
    shown = [r for r in mine if r.get("media") and (
        r["kind"] in ("model", "tokenizer") or not any(
            m["kind"] == "model" and m.get("media") for m in mine))]  # fmt: skip
    if shown:
      inputs = any(m.get("input") for r in shown for m in r["media"])
      out.append("<h3>Samples</h3>")
      out.append('<table class="samples"><thead><tr><th>cell</th>'
                 "<th>prompt</th>" + ("<th>input</th>" if inputs else "")
                 + "<th>ground truth</th><th>samples</th></tr></thead>"
                 "<tbody>")  # fmt: skip
      for r in shown:
        for m in r["media"]:
          sound = bool(r.get("sound"))
          inp = _media_tag(m["input"], False) if m.get("input") else ""
          out.append(
              f"<tr><td>{_settings(r)}<br>example {m['example']}</td>"
              f'<td class="prompt">{_e(m["prompt"])}</td>'
              + (f"<td>{inp}</td>" if inputs else "")
              + f"<td>{_media_tag(m['truth'], True)}</td><td>"
              + " ".join(_media_tag(s, sound) for s in m["samples"])
              + "</td></tr>"
          )
      out.append("</tbody></table>")
    out.append("</section>")
  out.append(
      "<details><summary>page self-check (open report.html#selfcheck to"
      ' play the videos first)</summary><pre id="selfcheck">pending</pre>'
      "</details>"
  )
  out.append("</body></html>")
  _atomic_write(path, "\n".join(out) + "\n")


# ---------------------------------------------------------------- Chromium.
def find_chromium() -> str | None:
  """A Chromium (or Chrome) binary: $CHROMIUM, else the first on PATH."""
  env = os.environ.get("CHROMIUM")
  if env and shutil.which(env):
    return shutil.which(env)
  for name in CHROMIUM_NAMES:
    found = shutil.which(name)
    if found:
      return found
  return None


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess:
  binary = find_chromium()
  if binary is None:
    raise FileNotFoundError(
        "no chromium binary (looked for $CHROMIUM, "
        + ", ".join(CHROMIUM_NAMES)
        + "); apt-get install chromium"
    )
  return subprocess.run(
      [binary, *CHROMIUM_FLAGS, *args], capture_output=True, text=True,
      timeout=timeout, check=False,
  )  # fmt: skip


def screenshot(html_path: str, png_path: str, timeout: float = 90.0) -> None:
  """report.png: the page as headless Chromium draws it (its top part)."""
  tmp = f"{png_path}.{os.getpid()}.tmp.png"
  proc = _chromium(
      [f"--screenshot={os.path.abspath(tmp)}", "--window-size=1280,1800",
       "--hide-scrollbars", "--virtual-time-budget=5000",
       "file://" + os.path.abspath(html_path)],
      timeout,
  )  # fmt: skip
  if not os.path.exists(tmp):
    raise RuntimeError(
        f"chromium wrote no screenshot (exit {proc.returncode}):"
        f" {proc.stderr.strip()[-300:]}"
    )
  os.replace(tmp, png_path)


def browser_check(html_path: str, timeout: float = 120.0,
                  budget_ms: int = 10000) -> dict:  # fmt: skip
  """Loads `html_path#selfcheck` in headless Chromium; the self-check JSON.

  Returns:
    The page's findings ({'done', 'errors', 'results_tables',
    'broken_images', 'videos': [{src, sound, duration, audio, ...}]}),
    plus 'console_errors': console messages Chromium logged at error level
    (or mentioning an uncaught error) and 'stderr_tail'.
  """
  proc = _chromium(
      ["--enable-logging=stderr", "--v=0",
       f"--virtual-time-budget={budget_ms}", "--dump-dom",
       "file://" + os.path.abspath(html_path) + "#selfcheck"],
      timeout,
  )  # fmt: skip
  dom = proc.stdout
  start = dom.find('<pre id="selfcheck">')
  if start < 0:
    raise RuntimeError(
        f"no self-check in the DOM chromium dumped (exit {proc.returncode}):"
        f" {proc.stderr.strip()[-500:]}"
    )
  text = dom[start + len('<pre id="selfcheck">') : dom.find("</pre>", start)]
  text = html.unescape(text)
  try:
    found = json.loads(text)
  except json.JSONDecodeError:
    found = {"done": False, "raw": text}
  console = [
      line for line in proc.stderr.splitlines()
      if "CONSOLE" in line and (
          "ERROR" in line.split("CONSOLE")[0] or "Uncaught" in line
          or "Error" in line or "Failed to load" in line)
  ]  # fmt: skip
  found["console_errors"] = console
  found["stderr_tail"] = proc.stderr[-2000:]
  return found


# -------------------------------------------------------------------- All.
def write_all(workdir: str, rows: list[dict], cfg, log: Callable[[str], None]
              = print) -> dict[str, Any]:  # fmt: skip
  """Writes every output of the sweep; returns their paths (relative)."""
  done = [r for r in rows if r.get("status") == "done"]
  models = sorted(
      {(r["label"], r["step"]) for r in rows if r["kind"] == "model"}
  )
  title = "VideoPoet eval: " + (
      ", ".join(f"{l} step {s}" for l, s in models) if models
      else "ground truth and chance"
  )  # fmt: skip
  dataset = next((r.get("dataset") for r in rows), "")
  per_cell = (
      f"{cfg.num_examples} examples x {cfg.num_samples} samples per model"
      " cell" if models else f"{cfg.num_examples} examples per cell"
  )  # fmt: skip
  notes = [
      f"Dataset {dataset}, splits {', '.join(cfg.splits)}; {per_cell}"
      f" ({len(rows)} cells, {len(rows) - len(done)} failed);"
      f" written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
  ]
  lms = sorted({r["lm"] for r in rows if r.get("lm")})
  notes += [f"{lm_row}: {lm}" for lm_row, lm in
            ((next(r["label"] for r in rows if r.get("lm") == lm), lm)
             for lm in lms)]  # fmt: skip
  write_csv(os.path.join(workdir, "results.csv"), rows)
  write_md(os.path.join(workdir, "results.md"), rows, title)
  if getattr(cfg, "headline", ()):
    write_headline(os.path.join(workdir, "headline.md"), rows, cfg.headline)
  plots = write_plots(workdir, rows)
  html_path = os.path.join(workdir, "report.html")
  write_html(html_path, rows, plots, title, notes)
  outputs = {"csv": "results.csv", "md": "results.md", "plots": plots,
             "html": "report.html", "screenshot": None}  # fmt: skip
  if getattr(cfg, "screenshot", True):
    try:
      screenshot(html_path, os.path.join(workdir, "report.png"))
      outputs["screenshot"] = "report.png"
    except (FileNotFoundError, RuntimeError, OSError,
            subprocess.TimeoutExpired) as e:  # fmt: skip
      log(f"evaluate: no report.png: {str(e).splitlines()[0]}")
  log(
      f"evaluate: wrote results.csv, results.md, {len(plots)} plots,"
      f" report.html{', report.png' if outputs['screenshot'] else ''}"
      f" in {workdir}"
  )
  return outputs


__all__ = [
    "write_all",
    "write_csv",
    "write_md",
    "write_plots",
    "write_html",
    "find_chromium",
    "screenshot",
    "browser_check",
]
