//! kho-query's integration tests, in one test binary: the views (`views`).

mod views;
