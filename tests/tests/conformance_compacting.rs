//! The conformance suite on Gesta's engine with aggressive background
//! compaction: a flush every few events, merges after most flushes and
//! every sealed segment rewritten compressed, concurrently with the suite's
//! appends and reads.

use gesta_tests::store_harness::StoreHarness;

gesta_tests::conformance_tests!(StoreHarness::compacting(true));
