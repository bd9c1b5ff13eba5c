//! kho-catalog's integration tests, in one test binary: the workflow and the release
//! property tests (`catalog`), and governance decisions raced on one process and on two
//! over one store (`races`).

mod catalog;
mod races;
