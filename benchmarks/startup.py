"""How fast the command line answers: ``--help``, ``--version``, the package import, a refused source, and exit.

Each measurement is a fresh process of this virtual environment, timed from the outside: wall seconds
(what a user waits) and CPU seconds of the child (user + system, from ``RUSAGE_CHILDREN``; much less
sensitive than wall time to other load on a shared machine). ``--repeat`` runs of each, alternating,
and the medians are reported.

- ``influence-stage --help`` and ``influence-stage --version`` (target: ≤ 1 s), and which of torch,
  Prefect, Great Expectations and ``scipy.stats`` they import (none, by design);
- ``python -c "import influence_stage"`` beside ``python -c "import torch"`` (target: at most torch +
  1 s), and which of those modules the package import pulls in;
- ``influence-stage clean`` with a mistyped ``--label-column`` on a small CSV: seconds to exit 2
  (target: ≤ 3 s; the schema is checked before any Prefect server starts);
- a successful ``influence-stage clean`` of a small CSV (200 rows, 4 features, 2 classes, a temporary
  Prefect home): seconds from the line ``published: ...`` on stdout to the process's exit (target:
  ≤ 3 s), and the whole run's wall seconds.

Writes benchmarks/results/startup.json and .md.
Run: ``.venv/bin/python benchmarks/startup.py [--repeat 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, machine, write_json

PYTHON = sys.executable
CLI = str(Path(sys.executable).with_name("influence-stage"))
HEAVY = ("torch", "prefect", "great_expectations", "scipy.stats")
"""Modules the quick paths must not import."""

TARGETS = {"help_s": 1.0, "version_s": 1.0, "import_over_torch_s": 1.0, "bad_label_s": 3.0, "published_to_exit_s": 3.0}


def env_for(home: str | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "GX_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
           "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PREFECT_API_URL", None)
    if home:
        env["PREFECT_HOME"] = home
    return env


def timed(cmd: list[str], env: dict[str, str], timeout: float = 600) -> dict:
    """One child process: wall seconds, CPU seconds (user + system), exit code, output tails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "returncode": done.returncode, "stdout": done.stdout[-2000:],
            "stderr": done.stderr[-2000:]}


def medians(runs: list[dict]) -> dict:
    return {"wall_s": statistics.median(r["wall_s"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "wall_runs": [round(r["wall_s"], 3) for r in runs], "cpu_runs": [round(r["cpu_s"], 3) for r in runs],
            "returncodes": sorted({r["returncode"] for r in runs})}


_MODULES = "import sys, json; print(json.dumps({m: m in sys.modules for m in %r}), file=sys.stderr)" % (HEAVY,)


def imported_by(code: str, env: dict[str, str]) -> dict[str, bool]:
    """Which of ``HEAVY`` a fresh interpreter holds after running ``code`` (which may raise SystemExit)."""
    script = f"try:\n    {code}\nexcept SystemExit:\n    pass\n{_MODULES}"
    done = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    return json.loads(done.stderr.strip().splitlines()[-1])


def small_csv(folder: Path, rows: int = 200) -> Path:
    """``rows`` rows, 4 float features, 2 classes (10% flipped), as CSV."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, rows)
    X = rng.normal(size=(rows, 4)) + y[:, None] * 1.5
    label = np.where(rng.random(rows) < 0.1, 1 - y, y)
    path = folder / "small.csv"
    pd.DataFrame(X, columns=[f"x{j}" for j in range(4)]).assign(label=label).to_csv(path, index=False)
    return path


def published_to_exit(folder: Path, limit_s: float = 600) -> dict:
    """A successful ``clean`` of :func:`small_csv`: seconds from its ``published:`` line to its exit, and in all."""
    csv = small_csv(folder)
    cmd = [CLI, "clean", "--source", str(csv), "--label-column", "label", "--name", "startup",
           "--publish-root", str(folder / "published"), "--cache-dir", str(folder / "cache")]
    env = env_for(str(folder / "prefect_home"))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    published_at, line_seen = None, None
    for line in proc.stdout:
        if published_at is None and line.startswith("published:"):
            published_at, line_seen = time.perf_counter(), line.strip()
    proc.wait(timeout=limit_s)
    end = time.perf_counter()
    reader.join(timeout=5)
    return {"returncode": proc.returncode, "whole_run_s": end - t0, "published_line": line_seen,
            "published_to_exit_s": None if published_at is None else end - published_at,
            "stderr_tail": "".join(err)[-1500:] if proc.returncode else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-clean", action="store_true", help="leave out the successful clean run")
    args = parser.parse_args()
    env = env_for()
    runs: dict[str, list[dict]] = {"help": [], "version": [], "import_package": [], "import_torch": [],
                                   "bad_label": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv = small_csv(folder)
        bad = [CLI, "clean", "--source", str(csv), "--label-column", "lable", "--name", "startup",
               "--publish-root", str(folder / "published"), "--cache-dir", str(folder / "cache")]
        for _ in range(args.repeat):  # alternating, so slow spells of the machine hit every measurement
            runs["help"].append(timed([CLI, "--help"], env))
            runs["version"].append(timed([CLI, "--version"], env))
            runs["import_torch"].append(timed([PYTHON, "-c", "import torch"], env))
            runs["import_package"].append(timed([PYTHON, "-c", "import influence_stage"], env))
            runs["bad_label"].append(timed(bad, env_for(str(folder / "prefect_bad"))))
        out: dict = {name: medians(r) for name, r in runs.items()}
        out["bad_label"]["stderr"] = runs["bad_label"][0]["stderr"].strip()
        out["imports"] = {
            "--help": imported_by("from influence_stage.cli import main; main(['--help'])", env),
            "--version": imported_by("from influence_stage.cli import main; main(['--version'])", env),
            "import influence_stage": imported_by("import influence_stage", env),
        }
        if not args.skip_clean:
            out["clean"] = published_to_exit(folder)
    results = {
        "help_s": out["help"]["wall_s"], "version_s": out["version"]["wall_s"],
        "import_over_torch_s": out["import_package"]["wall_s"] - out["import_torch"]["wall_s"],
        "bad_label_s": out["bad_label"]["wall_s"],
        "published_to_exit_s": (out.get("clean") or {}).get("published_to_exit_s"),
    }
    cpu = {"help_s": out["help"]["cpu_s"], "version_s": out["version"]["cpu_s"],
           "import_over_torch_s": out["import_package"]["cpu_s"] - out["import_torch"]["cpu_s"],
           "bad_label_s": out["bad_label"]["cpu_s"]}
    load = os.getloadavg()
    write_json("startup", {"machine": machine(), "load_average": load, "repeat": args.repeat, "targets": TARGETS,
                           "results_wall_s": results, "results_cpu_s": cpu, "measurements": out})
    text = markdown(results, cpu, out, load, args.repeat)
    (RESULTS / "startup.md").write_text(text)
    print(text)


def markdown(results: dict, cpu: dict, out: dict, load: tuple, repeat: int) -> str:
    names = {"help_s": "`influence-stage --help`", "version_s": "`influence-stage --version`",
             "import_over_torch_s": "`import influence_stage` minus `import torch`",
             "bad_label_s": "mistyped `--label-column` → exit 2",
             "published_to_exit_s": "`published:` printed → process exit (`clean`, 200 rows)"}
    lines = ["## Startup (`benchmarks/startup.py`)", "",
             f"Fresh processes of this environment, timed from outside; median of {repeat} alternating runs "
             "(the clean run once). CPU = the child's user + system seconds, far less sensitive than wall time to "
             f"the machine's other load (load average at the end: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} on "
             f"{os.cpu_count()} CPUs).", "",
             "| what | wall, s | CPU, s | target | met (wall) |", "|---|---|---|---|---|"]
    for key, label in names.items():
        wall = results[key]
        target = TARGETS[key]
        shown = "–" if wall is None else f"{wall:.2f}"
        met = "–" if wall is None else ("yes" if wall <= target else "no")
        c = cpu.get(key)
        bound = f"≤ torch + {target:g} s" if key == "import_over_torch_s" else f"≤ {target:g} s"
        lines.append(f"| {label} | {shown} | {'–' if c is None else f'{c:.2f}'} | {bound} | {met} |")
    lines += ["", f"`import torch` alone: {out['import_torch']['wall_s']:.2f} s wall, "
              f"{out['import_torch']['cpu_s']:.2f} s CPU; `import influence_stage`: "
              f"{out['import_package']['wall_s']:.2f} s wall, {out['import_package']['cpu_s']:.2f} s CPU."]
    for what, mods in out["imports"].items():
        held = [m for m, v in mods.items() if v]
        lines.append(f"- `{what}` imports {', '.join(held) if held else 'none'} of {', '.join(HEAVY)}.")
    lines.append(f"- The mistyped label column's message: `{out['bad_label']['stderr'][:200]}` "
                 f"(exit codes {out['bad_label']['returncodes']}).")
    clean = out.get("clean")
    if clean:
        lines.append(f"- The clean run: exit {clean['returncode']}, {clean['whole_run_s']:.1f} s in all; "
                     f"`{clean['published_line']}`.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
