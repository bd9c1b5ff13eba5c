//! kho-catalog's integration tests, in one test binary: the workflow and the release
//! property tests (`catalog`).

mod catalog;
