//! The conformance suite on Gesta's engine, on a real file system.

use gesta_tests::store_harness::StoreHarness;

gesta_tests::conformance_tests!(StoreHarness::on_disk());
