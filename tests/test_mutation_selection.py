"""The per-module leave-out of mutation testing (tests/conftest.py, docs/testing.md): a test marked
not_run_for_mutants_of(MODULE) is left out for the mutants of MODULE and of the modules under it only, and never
outside a mutant's run (CI's, the stats run, the clean run)."""

from __future__ import annotations

import pytest

from conftest import left_out_for_mutant


class _Item:
    """The one part of a pytest item the rule reads: its markers of a name."""

    def __init__(self, *marks):
        self._marks = marks

    def iter_markers(self, name):
        return (mark for mark in self._marks if mark.name == name)


SECURITY_ONLY = _Item(pytest.mark.not_run_for_mutants_of("streamer.stream.security").mark)
TWO_MODULES = _Item(pytest.mark.not_run_for_mutants_of("streamer.models", "streamer.imageio").mark)


@pytest.mark.parametrize("mutant, left_out", [
    ("streamer.stream.security.x_load__mutmut_3", True),
    ("streamer.stream.security.xǁAuthenticationǁ_watch__mutmut_9", True),  # a method's mutant
    ("streamer.stream.securityx.x_load__mutmut_3", False),  # a module whose name only starts the same
    ("streamer.stream.x_security__mutmut_1", False),  # the parent package's own function
    ("streamer.stream.tally.x_count__mutmut_1", False),
    ("", False),  # no mutant: CI, a plain pytest run
    ("stats", False), ("list_all_tests", False), ("fail", False),  # mutmut's own runs of the whole selection
])
def test_a_marked_test_is_left_out_for_its_modules_mutants_only(mutant, left_out):
    assert left_out_for_mutant(SECURITY_ONLY, mutant) is left_out
    assert left_out_for_mutant(_Item(), mutant) is False  # unmarked: always runs


def test_one_mark_may_name_several_modules_and_their_submodules():
    assert left_out_for_mutant(TWO_MODULES, "streamer.models.cache.x_probe__mutmut_2")
    assert left_out_for_mutant(TWO_MODULES, "streamer.imageio.x_read__mutmut_1")
    assert not left_out_for_mutant(TWO_MODULES, "streamer.stream.security.x_load__mutmut_3")


def test_the_processor_runs_of_the_curve_tests_carry_the_mark():
    """The four whole-processor runs docs/testing.md names, and no other test of the file."""
    import test_stream_curve

    marked = sorted(name for name, function in vars(test_stream_curve).items()
                    if name.startswith("test_") and any(mark.name == "not_run_for_mutants_of"
                                                         for mark in getattr(function, "pytestmark", [])))
    assert marked == ["test_curve_control_and_results_serve_only_authorized_clients",
                      "test_persense_run_with_curve_flags_publishes_and_exits_0",
                      "test_subscribe_cli_with_client_keys_receives_results",
                      "test_the_example_subscriber_with_client_keys_receives_results"]


def test_collection_leaves_the_marked_tests_out_of_a_security_mutants_run():
    """conftest's hook as mutmut's workers meet it: the mutant's name in MUTANT_UNDER_TEST at collection (one
    pytest process, seconds; the rule for other mutants and for no mutant is checked above)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/test_stream_curve.py"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MUTANT_UNDER_TEST": "streamer.stream.security.x_load__mutmut_3"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(collected) == 15 and not any("receive" in line or "publishes" in line or "serve_only" in line
                                            for line in collected), collected
    assert "(4 deselected)" in done.stdout.strip().splitlines()[-1]
