//! kho-api's integration tests, in one test binary: the routes in process (`routes`), and the
//! pages' sessions, CSRF and headers in process (`pages`; the browser tests are end to end,
//! in `tests/tests/it/pages.rs`).

mod pages;
mod routes;
