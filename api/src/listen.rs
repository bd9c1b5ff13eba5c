//! kho's own accept loop, in place of `axum::serve`, for what a server facing untrusted
//! clients needs: a deadline for each request's headers (idle keep-alive connections
//! included), a deadline between the chunks of a body, a budget of body bytes in flight
//! across all connections, and a stop that does not wait forever.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::error::ApiError;

/// The connection limits.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// From the moment a connection waits for a request until its headers are in.
    pub header_timeout: Duration,
    /// The longest pause between two chunks of a request body.
    pub body_chunk_timeout: Duration,
    /// Body bytes (as announced by Content-Length, or the body limit when not announced)
    /// that all requests together may be sending; past it a request gets 503.
    pub bodies_in_flight: usize,
    /// The largest body one request may send.
    pub body_limit: usize,
    /// After the stop signal, how long requests in progress may still take.
    pub grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_chunk_timeout: Duration::from_secs(30),
            bodies_in_flight: 512 * 1024 * 1024,
            body_limit: 64 * 1024 * 1024,
            grace: Duration::from_secs(10),
        }
    }
}

/// The budget of body bytes in flight, in KiB permits.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
    body_limit: usize,
}

impl BodyBudget {
    pub fn new(limits: &ConnLimits) -> Self {
        let total_kib = u32::try_from(limits.bodies_in_flight / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            body_limit: limits.body_limit,
        }
    }
}

/// Holds a request's share of the body budget until its answer is made.
pub async fn body_budget(State(budget): State<BodyBudget>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let has_body = announced.is_some_and(|n| n > 0)
        || req
            .headers()
            .contains_key(axum::http::header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(req).await;
    }
    let bytes = announced
        .unwrap_or(budget.body_limit)
        .min(budget.body_limit);
    let kib = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, budget.total_kib);
    let Ok(_permit) = budget.permits.clone().try_acquire_many_owned(kib) else {
        return ApiError::Unavailable(
            "too many request bodies are being received at once; retry in a moment".into(),
        )
        .into_response();
    };
    next.run(req).await
}

/// Serves `app` on `listener` until `stop` turns true, then lets requests in progress finish
/// for at most the grace period.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        // Answers are small writes after a long wait: send them at once (no Nagle delay).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
                let app = app.clone();
                async move {
                    Ok::<_, Infallible>(
                        app.oneshot(req.map(axum::body::Body::new))
                            .await
                            .unwrap_or_else(|never| match never {}),
                    )
                }
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("stopping: finishing requests in flight");
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = limits.grace.as_secs(),
            "requests still running after the grace period: stopping anyway"
        );
    }
}
