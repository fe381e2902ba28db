//! Stop and reload signals. The stop signal reaches the drain through the small
//! [`StopSignalWatch`] trait (after pingora's `ShutdownSignalWatch`): production hands in
//! [`UnixStopSignals`], a test hands in a channel and drives the drain in process.

use std::future::Future;
use std::time::Duration;

use actix_web::dev::ServerHandle;

use crate::ops::health::Readiness;

/// How the process was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM (or Ctrl-C where there are no Unix signals): drain, then stop gracefully.
    Terminate,
    /// SIGINT or SIGQUIT: stop at once, in-flight requests are cut.
    Interrupt,
}

/// Where stop requests come from. `recv` waits for the next one; a source that can send no more
/// (a closed channel) waits forever, as a process nobody signals runs on.
pub trait StopSignalWatch: Send + 'static {
    /// The next stop request.
    fn recv(&mut self) -> impl Future<Output = StopSignal> + Send;
}

/// A test's stop signals: whatever is sent on the channel.
impl StopSignalWatch for tokio::sync::mpsc::UnboundedReceiver<StopSignal> {
    async fn recv(&mut self) -> StopSignal {
        match tokio::sync::mpsc::UnboundedReceiver::recv(self).await {
            Some(s) => s,
            None => std::future::pending().await,
        }
    }
}

/// The process's stop signals (SIGTERM, SIGINT, SIGQUIT), registered once so that a second
/// signal during the drain is not lost.
#[derive(Debug)]
pub struct UnixStopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    quit: tokio::signal::unix::Signal,
}

impl UnixStopSignals {
    /// Registers the handlers (from inside the runtime).
    pub fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                quit: signal(SignalKind::quit())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }
}

impl StopSignalWatch for UnixStopSignals {
    async fn recv(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => StopSignal::Terminate,
                _ = self.int.recv() => StopSignal::Interrupt,
                _ = self.quit.recv() => StopSignal::Interrupt,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            StopSignal::Terminate
        }
    }
}

/// Stops the servers behind `handles` on a signal from `signals`. Terminate: first `drain` —
/// `/readyz` answers 503 `draining` so the load balancer's health check takes the instance out,
/// while every request that still arrives is served — then the listeners close and in-flight
/// requests get `server.shutdown_timeout_secs` to finish. A second signal ends the drain early.
/// Interrupt stops at once (the interactive Ctrl-C).
pub(super) async fn stop_on_signal<S: StopSignalWatch>(
    mut signals: S,
    readiness: &Readiness,
    handles: Vec<ServerHandle>,
    drain: Duration,
) {
    let how = signals.recv().await;
    let graceful = how == StopSignal::Terminate;
    if graceful && !drain.is_zero() {
        readiness.start_draining();
        tracing::info!(
            drain_secs = drain.as_secs(),
            "SIGTERM: draining (/readyz answers 503, requests are still served)"
        );
        tokio::select! {
            () = tokio::time::sleep(drain) => {}
            _ = signals.recv() => tracing::info!("second signal: drain ended early"),
        }
    }
    tracing::info!(
        graceful,
        "stopping: listeners closed, in-flight requests finish within shutdown_timeout_secs"
    );
    futures_util::future::join_all(handles.iter().map(|h| h.stop(graceful))).await;
}

/// Calls `reload` on every SIGHUP (nothing where there are no Unix signals).
pub(super) fn spawn_sighup(reload: impl Fn() + 'static) {
    #[cfg(unix)]
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload by signal disabled");
            return;
        };
        while hup.recv().await.is_some() {
            reload();
        }
    });
    #[cfg(not(unix))]
    let _ = reload;
}
