"""What a third-party device package runs: hwprof's contract suite over its device."""

from hwprof.testing import check_device
from hwprof_device_example import UnoptimizedOrtDevice


def test_unoptimized_ort_keeps_the_hwprof_device_contract():
    report = check_device(UnoptimizedOrtDevice)
    assert "run(5) returns 5 float64 seconds, finite and positive" in report.passed
