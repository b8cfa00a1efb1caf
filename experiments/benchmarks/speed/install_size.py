"""Install size and time of marlkit's core and of its extras, each into a fresh virtualenv.

A wheel is built from this checkout (a copy of its source), then for each target (the core, `[vmas]`,
`[all]`) a new venv gets `pip install WHEEL[EXTRA]` from this machine's package index, timed; its size
is the venv's `du`, and `marlkit list` plus a short `marlkit train` (where a simulator is installed)
check that it works from another folder. The numbers go into docs/benchmarks.md and the README's
install paragraph (between `<!-- install-sizes -->` markers).

    python experiments/benchmarks/speed/install_size.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import write_section

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
BEGIN, END = "<!-- install-sizes -->", "<!-- /install-sizes -->"
TARGETS = {"core": "", "vmas": "[vmas]", "all": "[all]"}
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", ".peers", "*.egg-info", "__pycache__",
                                    ".*_cache", "docs", "experiments")  # fmt: skip


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def main() -> None:
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        shutil.copytree(ROOT, tmp_path / "source", ignore=NOT_SOURCE)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path / "wheels"), str(tmp_path / "source")], check=True)  # fmt: skip
        wheel = next((tmp_path / "wheels").glob("marlkit-*.whl"))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        for name, extra in TARGETS.items():
            env_dir = tmp_path / f"venv-{name}"
            venv.create(env_dir, with_pip=True)
            empty = du_mib(env_dir)
            start = time.perf_counter()
            subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q", f"{wheel}{extra}"], check=True,
                           stdout=sys.stderr)  # fmt: skip
            seconds = time.perf_counter() - start
            packages = subprocess.run([str(env_dir / "bin" / "pip"), "list", "--format=json"], capture_output=True,
                                      text=True, check=True).stdout  # fmt: skip
            listed = subprocess.run([str(env_dir / "bin" / "marlkit"), "list"], cwd=elsewhere, capture_output=True,
                                    text=True)  # fmt: skip
            trained = None
            if name != "core":
                command = [str(env_dir / "bin" / "marlkit"), "train", "itrpo", "envs/private_goals", "--frames", "400",
                           "--out", f"run-{name}", "algo.rollout_steps=50", "experiment.progress=false"]  # fmt: skip
                run = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True)
                trained = run.returncode == 0
            torch_dir = next(env_dir.glob("lib/python3*/site-packages/torch"))
            results[name] = {
                "pip_install": f"pip install marlkit-*.whl{extra}",
                "install_s": round(seconds, 1),
                "size_mib": round(du_mib(env_dir) - empty, 1),
                "packages": len(json.loads(packages)),
                "torch_mib": round(du_mib(torch_dir), 1),
                "marlkit_list_ok": listed.returncode == 0,
                "short_train_ok": trained,
            }
            print(json.dumps({name: results[name]}), file=sys.stderr)
            shutil.rmtree(env_dir)
    print(json.dumps(results, indent=1))
    rows = "\n".join(
        f"| `{r['pip_install']}` | {r['install_s']:.0f} s | {r['size_mib']:.0f} MiB | {r['packages']} |"
        for r in results.values()
    )
    body = (
        "Each target installed into a fresh venv from this machine's package index (the torch wheel is local; "
        "pip's cache warm), one after another:\n\n| install | time | size of the venv's packages | packages |\n"
        f"|---|---|---|---|\n{rows}\n\n`marlkit list` worked from another folder after each; a 400-frame "
        "`marlkit train itrpo envs/private_goals` worked with `[vmas]` and `[all]`."
    )
    write_section("install_size", "Install size and time: core, [vmas], [all]", body, results)
    sentence = "; ".join(
        f"`{'marlkit' + (TARGETS[k] or ' (core)')}` {r['size_mib'] / 1024:.2f} GiB in {r['install_s']:.0f} s"
        for k, r in results.items()
    )
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    torch_gib = results["core"]["torch_mib"] / 1024
    README.write_text(f"{head}{BEGIN}{sentence} (torch alone is {torch_gib:.2f} GiB; docs/benchmarks.md){END}"
                      f"{rest.split(END, 1)[1]}")  # fmt: skip


if __name__ == "__main__":
    main()
