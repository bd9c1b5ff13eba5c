//! kho-api: the HTTP face of kho and its command line. The only crate that knows HTTP.
//!
//! Routes live in [`routes`], one module per resource; errors become statuses in
//! [`error`] alone; callers are authenticated in [`auth`].

pub mod auth;
pub mod cli;
pub mod demo;
pub mod error;
pub mod listen;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod server;
