//! HTTP routes, one module per resource.

pub mod admin;
pub mod catalog;
pub mod ckan;
pub mod dcat;
pub mod health;
pub mod streams;
pub mod views;
