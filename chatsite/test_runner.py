"""The Django test runner, closing with a plain 'N passed, N failed, N skipped' line that CI tools can read."""

import logging
import unittest
from typing import Any

from django.test.runner import DiscoverRunner


class CountingTestRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs: Any) -> None:
        super().setup_test_environment(**kwargs)
        # One INFO line per connect and close is right for a server and noise in a test run.
        logging.getLogger("chat").setLevel(logging.WARNING)

    def run_suite(self, suite: Any, **kwargs: Any) -> unittest.TextTestResult:
        result = super().run_suite(suite, **kwargs)
        failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        passed = result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)
        print(f"\n{passed} passed, {failed} failed, {len(result.skipped)} skipped")
        return result
