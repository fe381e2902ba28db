//! Operating it: the ops and admin listeners, start modes, the demo command, deploy artefacts, logs, reports, TLS.

mod bench_reports;
mod cli_demo;
mod cli_output;
mod deploy_artefacts;
mod listeners;
mod log_scan;
mod start_modes;
mod tls;
