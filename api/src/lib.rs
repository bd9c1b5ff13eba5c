//! kho-api: the HTTP face of kho (router, routes, authentication, errors, the accept
//! loop). The only crate that knows HTTP; the `kho` binary crate starts it.
//!
//! Routes live in [`routes`], one module per resource, and the pages people use in `web`;
//! errors become statuses in [`error`] alone; bodies and query strings are parsed by
//! [`extract`], whose rejections are those errors; callers are authenticated in [`auth`].

pub mod auth;
pub mod error;
pub mod extract;
pub mod listen;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod state;
mod web;
