import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (item.rep_setup, rep_call), so a fixture's teardown can tell
    whether its test failed (the browser tests save a screenshot then)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# --- No silent skips in CI -------------------------------------------------------------------------------------
# `.ci/run` sets PERSENSE_STRICT_SKIPS=1: there every peer (GStreamer, Aravis, Chromium) is installed, so a skip
# for any reason but a missing GPU means a peer failed to install, and the run fails instead of passing quietly.
# Locally the variable is unset and peer tests may skip.
ALLOWED_SKIP_REASON = re.compile(r"\b(GPU|CUDA|TensorRT)\b", re.IGNORECASE)


class StrictSkips:
    """Collects skips whose reason is not a missing GPU; fails the session on them."""

    def __init__(self):
        self.unexpected: list[str] = []

    def pytest_collectreport(self, report):  # a whole module skipped at import (pytest.importorskip)
        self.pytest_runtest_logreport(report)

    def pytest_runtest_logreport(self, report):
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not ALLOWED_SKIP_REASON.search(reason):
            self.unexpected.append(f"{report.nodeid}: {reason}")

    def pytest_sessionfinish(self, session, exitstatus):
        if self.unexpected and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if self.unexpected:
            terminalreporter.section("unexpected skips (PERSENSE_STRICT_SKIPS=1: only a missing GPU may skip)", red=True)
            for line in self.unexpected:
                terminalreporter.write_line(line)


def pytest_configure(config):
    if os.environ.get("PERSENSE_STRICT_SKIPS") == "1":
        config.pluginmanager.register(StrictSkips(), "persense-strict-skips")


# --- Per-module test selection for mutation testing (tools/mutation.py, docs/testing.md) ---------------------------
# mutmut runs, for each mutant, every selected test that reaches the mutated function. A test marked
# `not_run_for_mutants_of("streamer.stream.security")` (a whole processor run, 7-15 s, that reaches every function of
# the module) is left out for that module's mutants only: its exact tests measure them. Outside a mutant's run
# (mutmut sets MUTANT_UNDER_TEST to the mutant's name, "streamer.stream.security.x_load__mutmut_3"), nothing changes.
MUTANT_NAME_MARK = "__mutmut_"


def left_out_for_mutant(item, mutant: str) -> bool:
    """Whether `item` is marked not to run for the mutant named `mutant` (by the mutant's module or a parent)."""
    if MUTANT_NAME_MARK not in mutant:
        return False
    return any(mutant.startswith(module + ".")
               for mark in item.iter_markers("not_run_for_mutants_of") for module in mark.args)


def pytest_collection_modifyitems(config, items):
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    left_out = [item for item in items if left_out_for_mutant(item, mutant)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
