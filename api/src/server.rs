//! Serving: the accept loop on a listener, the background work (views, scheduled releases,
//! maintenance, governance refresh, heartbeats) and graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use kho_store::{MaintenanceOptions, NodeInfo, maintain_table, stream_key};
use tokio::net::TcpListener;

use crate::routes::{conn_limits, router};
pub use crate::state::{AppState, ServerConfig, StartError};

/// Serves until Ctrl-C or SIGTERM. Prints the bound address on stdout first.
pub async fn serve(state: AppState, listen: SocketAddr) -> Result<(), StartError> {
    let listener = TcpListener::bind(listen).await?;
    serve_on(state, listener, shutdown_signal()).await
}

/// Serves on a bound listener until `shutdown` completes. Prints the address on stdout.
pub async fn serve_on(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = listener.local_addr()?;
    // The heartbeat tells other tools this store is in use (`kho demo` refuses it).
    let mut node = NodeInfo::this_process(&format!("http://{addr}"), state.store.now());
    if let Err(e) = state.store.heartbeat(&mut node).await {
        tracing::warn!(error = %e, "could not write this node's heartbeat");
    }
    let heartbeat = {
        let store = state.store.clone();
        let mut node = node.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(kho_store::nodes::HEARTBEAT_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store.heartbeat(&mut node).await {
                    tracing::warn!(error = %e, "could not write this node's heartbeat");
                }
            }
        })
    };
    spawn_background(&state);
    println!("kho listening on http://{addr}");
    tracing::info!(%addr, store = %state.store.location().root(), "serving");
    let store = state.store.clone();
    let limits = conn_limits(&state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        // Running queries are dropped (their callers get 503) so the stop takes seconds.
        kho_query::compute::shutdown();
        let _ = stop_tx.send(true);
    });
    crate::listen::serve(listener, router(state), limits, stop_rx).await;
    heartbeat.abort();
    if let Err(e) = store.leave(&node).await {
        tracing::warn!(error = %e, "could not remove this node's heartbeat");
    }
    Ok(())
}

fn spawn_background(state: &AppState) {
    // Datasets released on their periodicity.
    let gov = state.governance.clone();
    let views = state.views.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            for id in gov.due_releases() {
                let scheduler = kho_catalog::Principal::scheduler();
                match gov
                    .release_fresh(
                        &views,
                        &scheduler,
                        &id,
                        kho_catalog::ReleaseStep::NewRelease,
                    )
                    .await
                {
                    Ok(d) => {
                        tracing::info!(dataset = %id, version = d.releases.last().map_or(0, |r| r.version), "scheduled release")
                    }
                    Err(e) => tracing::warn!(dataset = %id, error = %e, "scheduled release failed"),
                }
            }
        }
    });
    // Views: bring them up to date now, then after each burst of commits.
    let views = state.views.clone();
    let commits = state.ingest.subscribe();
    let (debounce, poll) = (state.config.view_debounce, state.config.view_poll);
    tokio::spawn(async move {
        if let Err(e) = views.refresh_all().await {
            tracing::warn!(error = %e, "initial view refresh failed");
        }
        views.run(commits, debounce, poll).await;
    });
    let gov = state.governance.clone();
    let every = state.config.governance_refresh;
    if !every.is_zero() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = gov.refresh().await {
                    tracing::warn!(error = %e, "could not re-read the governance log");
                }
            }
        });
    }
    let store = state.store.clone();
    let ingest = state.ingest.clone();
    let gov = state.governance.clone();
    let every = state.config.maintain_every;
    if !every.is_zero() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await; // not at start
            loop {
                tick.tick().await;
                for def in store.streams() {
                    let key = stream_key(&def.name);
                    let lock = ingest.maintenance_lock(&def.name);
                    let _guard = lock.lock().await;
                    match maintain_table(&store, &key, &MaintenanceOptions::default()).await {
                        Ok(r) => {
                            tracing::info!(stream = %def.name, files_before = r.files_before, files_after = r.files_after, "scheduled maintenance")
                        }
                        Err(e) => {
                            tracing::warn!(stream = %def.name, error = %e, "scheduled maintenance failed")
                        }
                    }
                }
                // Release tables no record names (a lost race, a process that died before
                // recording), an hour after their last write.
                match gov.sweep_releases(Duration::from_secs(3600)).await {
                    Ok(swept) if !swept.is_empty() => {
                        tracing::info!(
                            tables = swept.len(),
                            "swept release tables no release names"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not sweep release tables"),
                }
            }
        });
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
