//! The subscription and durable-subscription cases on the in-memory
//! reference store.

gesta_tests::subscription_tests!(gesta_tests::conformance::MemoryHarness);
gesta_tests::durable_subscription_tests!(gesta_tests::conformance::MemoryHarness);
