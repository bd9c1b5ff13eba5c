//! HTTP routes, one module per resource.

pub mod admin;
pub mod health;
pub mod streams;
pub mod views;
