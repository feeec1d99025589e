//! `ticketd serve`: the HTTP service, its projections, and a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use event_store::OpenedStore;
use ticket_app::{ServiceOptions, SystemClock, TicketService};
use tokio_util::sync::CancellationToken;

use crate::http::{self, AppState};

pub struct ServeConfig {
    pub listen: SocketAddr,
}

/// Runs until SIGTERM or Ctrl-C, then stops taking connections, lets in-flight requests
/// finish, and stops the projections.
pub async fn serve(opened: OpenedStore, config: ServeConfig) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let (index_status, index_task) = ticket_projections::spawn(
        ticket_projections::TicketIndex::default(),
        opened.store.clone(),
        opened.database.clone(),
        shutdown.clone(),
    );
    let (view_status, view_task) = ticket_projections::spawn(
        ticket_projections::ticket_view::TicketView::new(opened.store.clone()),
        opened.store.clone(),
        opened.database.clone(),
        shutdown.clone(),
    );
    let (stats_status, stats_task) = ticket_projections::spawn(
        ticket_projections::statistics::Statistics::new(opened.store.clone()),
        opened.store.clone(),
        opened.database.clone(),
        shutdown.clone(),
    );
    let service = Arc::new(TicketService::new(opened.store.clone(), Arc::new(SystemClock), ServiceOptions::default()));
    let state = AppState {
        service,
        database: opened.database.clone(),
        projections: Arc::new(vec![
            ("ticket_index", index_status),
            ("ticket_view", view_status),
            ("statistics", stats_status),
        ]),
        tokens: Arc::default(),
        stats_days: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, backend = opened.store.backend(), "serving");
    // Tests and scripts read the address from here (it matters with port 0).
    println!("listening on http://{address}");
    let signal = shutdown.clone();
    // Answers are small and complete: send them at once rather than wait to coalesce (Nagle).
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, http::app(state))
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            signal.cancel();
        })
        .await?;
    shutdown.cancel();
    let _ = index_task.await;
    let _ = view_task.await;
    let _ = stats_task.await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
