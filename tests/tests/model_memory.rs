//! The model tests with the reference store on both sides: trivially equal,
//! but it exercises the generator and the driver cheaply.

use gesta_tests::conformance::MemoryHarness;

gesta_tests::model_tests!(MemoryHarness, 64);
