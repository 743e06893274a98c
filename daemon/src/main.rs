//! `slsd`: the sls second-factor verification daemon.

use std::process::ExitCode;

use clap::Parser;
use sls_daemon::config::{self, Config, LogFormat, Settings};
use sls_daemon::logging::{self, say};
use sls_daemon::service;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let settings = Settings::parse();
    if let Some(printout) = config::printout(&settings) {
        use std::io::Write;
        let written = printout.map_err(|e| e.to_string()).and_then(|bytes| {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(|e| e.to_string())
        });
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say(format_args!("slsd: {e}"));
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::from_args(settings) {
        Ok(c) => c,
        Err(e) => {
            say(format_args!("slsd: {e}"));
            return ExitCode::from(2);
        }
    };
    if let Some(to) = &config.audit_export {
        return audit_export(&config, to);
    }
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log));
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            say(format_args!("slsd: --log {}: {e}", config.log));
            return ExitCode::from(2);
        }
    };
    // Logging never panics a task: a line stderr cannot take (a full disk) is dropped, and
    // tracing's own report of that failure (an `eprintln!`, which would panic) is off.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(logging::Stderr)
        .log_internal_errors(false);
    match config.log_format {
        LogFormat::Text => {
            // Colours for a person at a terminal, never escape codes in a file or a pipe.
            use std::io::IsTerminal;
            builder.with_ansi(std::io::stderr().is_terminal()).init();
        }
        LogFormat::Json => {
            builder.json().with_ansi(false).init();
            logging::set_json(true);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(format_args!("slsd: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let bound = match service::bind(config).await {
            Ok(b) => b,
            Err(e) => {
                say(format_args!("slsd: {e}"));
                return ExitCode::FAILURE;
            }
        };
        for path in &bound.created {
            say(format_args!("slsd: created {}", path.display()));
        }
        say(format_args!(
            "slsd: data in {}, certificates in {} (frontends: ca.pem + frontend.pem/.key; admins: admin.pem/.key), {}",
            data_dir.display(),
            bound.tls_dir.display(),
            bound.store
        ));
        // The one line on stdout: where to connect (port 0 resolved), for scripts and tests.
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening {}", bound.addr).and_then(|()| out.flush());
        }
        match bound.run(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say(format_args!("slsd: {e}"));
                ExitCode::FAILURE
            }
        }
    })
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `--audit-export FILE|-`: the data directory's audit trail as JSON lines, then exit.
fn audit_export(config: &Config, to: &std::path::Path) -> ExitCode {
    let written = if to == std::path::Path::new("-") {
        let mut out = std::io::stdout().lock();
        sls_daemon::audit::export::export(&config.data_dir, &config.audit, &mut out)
    } else {
        std::fs::File::create(to).and_then(|f| {
            let mut out = std::io::BufWriter::new(f);
            sls_daemon::audit::export::export(&config.data_dir, &config.audit, &mut out)
        })
    };
    match written {
        Ok(n) => {
            say(format_args!("slsd: {n} audit entries exported"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(format_args!("slsd: --audit-export: {e}"));
            ExitCode::FAILURE
        }
    }
}
