//! The model tests: random operation sequences run against the engine and
//! the in-memory reference side by side; every result must match.

use gesta_tests::store_harness::StoreHarness;

gesta_tests::model_tests!(StoreHarness::in_memory(), 96);
