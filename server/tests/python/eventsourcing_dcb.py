"""Runs the `eventsourcing` library's DCB recorder checks (append, read with
its `after`/`limit`/`backwards`, conditions, idempotent retries, and a
subscription) through its UmaDB module against a fresh Gesta server.

    bash server/tests/python/run.sh
"""

import os
import unittest

from eventsourcing.dcb.tests import DcbRecorderTestCase
from umadb import Client

from eventsourcing_umadb.recorders import UmaDbDcbRecorder

URL = os.environ.get("GESTA_URL", "http://127.0.0.1:50051")


class TestDcbRecorder(DcbRecorderTestCase):
    def test_append_read(self) -> None:
        self._test_append_read(UmaDbDcbRecorder(Client(URL)))

    def test_append_subscribe(self) -> None:
        recorder = UmaDbDcbRecorder(Client(URL))
        self._test_append_subscribe(recorder, initial_position=recorder.head() or 0)


if __name__ == "__main__":
    unittest.main()
