"""Mutation testing of the algorithm and the wire format: run mutmut, print the kill rate.

    .venv/bin/python tools/mutation.py            # run (incrementally) and report
    .venv/bin/python tools/mutation.py --report   # report the last run only
    .venv/bin/python tools/mutation.py --fresh    # discard mutmut's cache (mutants/) first
    .venv/bin/python tools/mutation.py --module streamer.models.cache   # one module's mutants (and its rate)
    .venv/bin/python tools/mutation.py --equivalents --module streamer.tracking   # the listed equivalents, to review

What is mutated and which tests run is configured in pyproject.toml's [tool.mutmut]. Mutants that no test can
tell apart from the original are listed in tools/mutation_equivalents.toml, each by its function and its
mutated line, with a one-line reason; they are left out of the rate. The rate is
    killed / (all mutants - equivalent ones),
where "killed" includes timeouts (the mutant made a test hang) and "no tests" counts as surviving.
Exit status 1 when the rate is below --target (90 % by default).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.toml"
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def mutmut(*args: str, capture: bool = False) -> str:
    exe = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(exe), *args], cwd=ROOT, text=True, check=False,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        sys.exit(f"mutation: mutmut {' '.join(args)} exited with {done.returncode}")
    return done.stdout or ""


def mutant_pattern(module: str) -> str:
    """'streamer.models.cache' -> mutmut's name pattern for that module's mutants ('streamer.models.cache.*')."""
    return module.removesuffix(".py").replace("/", ".") + ".*"


def statuses(pattern: str | None = None) -> dict[str, str]:
    """mutant name -> mutmut's status, for every mutant of the last run (matching `pattern`, when given)."""
    out = {}
    for line in mutmut("results", "--all", "true", capture=True).splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name and (pattern is None or fnmatch.fnmatchcase(name, pattern)):
            out[name] = status
    return out


def _functions(path: Path) -> dict[str, str]:
    """Every function's source in a mutated module, by name (mutmut's trampolines name them *__mutmut_N)."""
    lines = path.read_text().splitlines()
    return {node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
            for node in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _diff(name: str, cache: dict[Path, dict[str, str]]) -> tuple[str, list[str], list[str]]:
    """'streamer.rle.x_crop_runs__mutmut_3' -> ('streamer.rle.x_crop_runs', original lines, mutated lines)."""
    function, _, _ = name.rpartition("__mutmut_")
    module, _, func = function.rpartition(".")
    path = ROOT / "mutants" / (module.replace(".", "/") + ".py")
    if path not in cache:  # parsed once per module (setdefault would parse it again for every mutant)
        cache[path] = _functions(path) if path.exists() else {}
    funcs = cache[path]
    orig, mutant = funcs.get(f"{func}__mutmut_orig", ""), funcs.get(func + name[len(function):], "")
    # The def lines differ by the function's name, and by a default argument where that is the mutation.
    orig_lines, new_lines = orig.splitlines(), mutant.splitlines()
    if orig_lines and new_lines:
        orig_lines[0] = orig_lines[0].replace(f"{func}__mutmut_orig(", f"{func}(", 1)
        new_lines[0] = new_lines[0].replace(f"{func + name[len(function):]}(", f"{func}(", 1)
    diff = list(difflib.unified_diff(orig_lines, new_lines, lineterm="", n=0))
    removed = [line[1:].strip() for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    return function, removed, added


def mutated_line(name: str, cache: dict[Path, dict[str, str]]) -> tuple[str, str]:
    """'streamer.rle.x_crop_runs__mutmut_3' -> ('streamer.rle.x_crop_runs', the mutant's changed line(s))."""
    function, _, added = _diff(name, cache)
    return function, " | ".join(added) if added else "<deleted line>"


def load_equivalents() -> dict[tuple[str, str], str]:
    data = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
    return {(e["function"], e["mutant"]): e["reason"] for e in data.get("equivalent", [])}


def list_equivalents(pattern: str | None) -> int:
    """Print the listed equivalent mutants (of the module matching `pattern`) for a reviewer: one block each with
    its function, the mutant's id when it was listed, the mutated line and the reason."""
    data = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
    cache: dict[Path, dict[str, str]] = {}
    shown = 0
    for entry in data.get("equivalent", []):
        if pattern is not None and not fnmatch.fnmatchcase(entry["function"] + "__mutmut_0", pattern):
            continue
        shown += 1
        print(f"{entry['function']}  {entry.get('id', '')}")
        if entry.get("id"):  # the original line, from the last run's mutants/ (when the id still names this mutant)
            _, removed, added = _diff(entry["function"].rpartition(".")[0] + "." + entry["id"], cache)
            if " | ".join(added) == entry["mutant"]:
                print("".join(f"    - {line}\n" for line in removed), end="")
        print(f"    + {entry['mutant']}\n    why: {entry['reason']}")
    print(f"{shown} listed equivalent mutants")
    return 0


def report(target: float, show_survivors: bool, pattern: str | None = None) -> int:
    status = statuses(pattern)
    if not status:
        sys.exit("mutation: no results; run without --report first")
    equivalents = load_equivalents()
    cache: dict[Path, dict[str, str]] = {}
    counts, per_function, survivors, matched = Counter(), Counter(), [], set()
    for name, state in sorted(status.items()):
        key = mutated_line(name, cache) if state not in KILLED else None
        if key is not None and key in equivalents:
            counts["equivalent"] += 1
            matched.add(key)
            continue
        counts["killed" if state in KILLED else "alive"] += 1
        if state not in KILLED:
            per_function[key[0]] += 1
            survivors.append((name, state, key[1]))
    stale = {key for key in set(equivalents) - matched
             if pattern is None or fnmatch.fnmatchcase(key[0] + "__mutmut_0", pattern)}
    considered = counts["killed"] + counts["alive"]
    rate = 100.0 * counts["killed"] / considered if considered else 100.0
    if show_survivors:
        for name, state, line in survivors:
            print(f"{name} [{state}]: {line}")
        print()
    for function, n in per_function.most_common():
        print(f"  {n:4d} alive  {function}")
    if stale:
        print(f"note: {len(stale)} listed equivalent mutants did not survive or no longer exist (stale entries)")
    print(f"mutants: {len(status)}  equivalent: {counts['equivalent']}  killed: {counts['killed']}  "
          f"alive: {counts['alive']}")
    print(f"kill rate: {rate:.1f}% of non-equivalent mutants (target {target:.0f}%)")
    return 0 if rate >= target else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only report the last run")
    parser.add_argument("--fresh", action="store_true", help="discard mutmut's cache (mutants/) first")
    parser.add_argument("--max-children", type=int, default=2, help="parallel test processes (default 2)")
    parser.add_argument("--survivors", action="store_true", help="list every surviving mutant's changed line")
    parser.add_argument("--equivalents", action="store_true",
                        help="only print the listed equivalent mutants (of --module), with their reasons, to review")
    parser.add_argument("--target", type=float, default=90.0, help="minimum kill rate in percent (default 90)")
    parser.add_argument("--module", help="only this module's mutants, e.g. streamer.models.cache (each mutant still "
                                         "runs only the tests that reach its function)")
    args = parser.parse_args()
    pattern = mutant_pattern(args.module) if args.module else None
    if args.equivalents:
        return list_equivalents(pattern)
    if not args.report:
        if args.fresh:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        mutmut("run", "--max-children", str(args.max_children), *([pattern] if pattern else []))
    return report(args.target, args.survivors, pattern)


if __name__ == "__main__":
    sys.exit(main())
