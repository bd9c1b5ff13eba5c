//! The store conformance suite: every test runs against memory, the local filesystem and,
//! when `KHO_TEST_S3_URL` is set (by `.ci/run`, pointing at a moto server), S3.

mod support;

mod appends;
mod maintenance;
mod races;
mod registry;
mod syslog;

/// Generates one test per backend for each listed async test function taking a `Backend`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::support::Backend::Memory).await })*
        }
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::support::Backend::local()).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(b) = $crate::support::Backend::s3() { super::$name(b).await }
            })*
        }
    };
}
