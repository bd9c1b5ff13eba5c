//! The end-to-end suite: every module starts the real `kho` binary (`cargo build` first, which
//! `scripts/test` does) and talks to it over HTTP on loopback, with real outside parts where a
//! module names them (moto's S3 server, the Python `deltalake` reader, DuckDB, ckanapi, rdflib).
//!
//! One test binary for the whole suite: it links HTTP, process and Arrow/Parquet readers only,
//! never DataFusion or Delta, so building it is cheap.

mod auth;
mod catalog;
mod cluster;
mod crashes;
mod demo;
mod faults;
mod hostile;
mod ingest;
mod maintain;
mod pages;
mod views;
