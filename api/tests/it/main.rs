//! kho-api's integration tests, in one test binary: the routes in process (`routes`).

mod routes;
