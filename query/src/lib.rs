//! kho-query: the DataFusion session over streams and views, the materialized views and
//! their refresh, the read-only SQL sandbox and result encoding.
//!
//! Empty until the views issue: nothing here yet.
