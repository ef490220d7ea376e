//! The model tests with aggressive background compaction (tiny memtables,
//! fan-in 2, every sealed segment compressed): every result must still
//! match the in-memory reference.

use gesta_tests::store_harness::StoreHarness;

gesta_tests::model_tests!(StoreHarness::compacting(false), 64);
