"""The C unit tests of src/ (no httpd), run as one pytest test so that the
whole suite ends with one summary."""

import os
import subprocess

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_core_unit_tests_pass():
    subprocess.run(["make", "-s", "t/unit/run_tests"], cwd=TOP, check=True)
    proc = subprocess.run(["t/unit/run_tests", "t/unit/cases"], cwd=TOP,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, "C unit tests failed:\n" + proc.stdout \
        + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].endswith(" 0 failed")
