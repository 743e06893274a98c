//! The bare echo: a QUIC server of the daemon's shape that answers every request frame with a
//! `Judged` frame and does nothing else, and its batched closed-loop client
//! ([`sls_loadgen::raw`]): the transport's own limit beside every sls figure (issue 13).
//!
//! The server is this binary re-executed with `--echo-server`: the same TLS (the daemon's own
//! PKI code), the same socket buffers and transport limits, the same frame codec, on one
//! `current_thread` runtime; its replies to one read go out in one write.

use std::ffi::OsStr;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use sls_client::ClientTls;
use sls_loadgen::daemon::Daemon;
use sls_loadgen::raw::{self, Shape};
use sls_protocol::{frame, Frame, Message, Role, Verdict, ALPN_FRONTEND, PROTOCOL_VERSION};

/// Serves the echo in `dir` (its PKI is created there) on an ephemeral loopback port, printed
/// as `listening ADDR` on stdout.
pub async fn server(dir: PathBuf) -> anyhow::Result<()> {
    let pki = sls_daemon::service::tls::Pki::load_or_create(&dir)?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(64))
        .stream_receive_window(quinn::VarInt::from_u32(1 << 20))
        .receive_window(quinn::VarInt::from_u32(8 << 20))
        .send_window(8 << 20);
    let mut config = pki.server_config(Arc::new(transport))?;
    config.max_incoming(50_000);
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = sock.set_recv_buffer_size(8 << 20);
    let _ = sock.set_send_buffer_size(8 << 20);
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let runtime = quinn::default_runtime().context("runtime")?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        sock.into(),
        runtime,
    )?;
    println!("listening {}", endpoint.local_addr()?);
    std::io::stdout().flush()?;
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((send, recv)) = conn.accept_bi().await {
                tokio::spawn(stream(send, recv));
            }
        });
    }
    Ok(())
}

/// One stream: every frame of a read decoded and answered, the answers written at once.
async fn stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    while let Ok(Some(chunk)) = recv.read_chunk(64 * 1024, true).await {
        inbuf.extend_from_slice(&chunk.bytes);
        while let Ok(Some(Frame { id, message })) = frame::decode(&mut inbuf) {
            let reply = match message {
                Message::Hello { .. } => Message::Welcome {
                    version: PROTOCOL_VERSION,
                    max_frame: 65536,
                    max_in_flight: 1024,
                    role: Role::Frontend,
                },
                _ => Message::Judged {
                    verdict: Verdict::Rejected { failures_left: 9 },
                },
            };
            let _ = frame::encode(id, &reply, &mut out);
        }
        if send.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
    let _ = send.finish();
}

/// Starts the echo server (this binary, `exe`) in `dir`.
pub fn spawn(exe: &Path, dir: &Path) -> anyhow::Result<Daemon> {
    Daemon::spawn(exe, [OsStr::new("--echo-server"), dir.as_os_str()], dir)
}

/// A closed loop of `connections` × `in_flight` echo requests over `threads` client threads for
/// `secs` (after a second of warm-up).
pub async fn closed(
    echo: &Daemon,
    connections: usize,
    in_flight: usize,
    threads: usize,
    secs: u64,
) -> anyhow::Result<raw::Stats> {
    let config =
        ClientTls::from_dir(&echo.tls_dir(), Role::Frontend)?.quinn_config(ALPN_FRONTEND)?;
    let shape = Shape {
        connections,
        in_flight,
        threads,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(secs),
        agent: "e2e-echo".into(),
    };
    let addr = echo.addr;
    tokio::task::spawn_blocking(move || {
        raw::run(
            sls_client::pipeline::Peer::new(addr, "localhost"),
            config,
            &shape,
            |_| raw::Echo::new(),
        )
    })
    .await?
}

/// `--echo-only`: the bare echo alone, its requests/s on stdout.
pub async fn only(
    exe: &Path,
    work: &Path,
    connections: usize,
    in_flight: usize,
    threads: usize,
    secs: u64,
) -> anyhow::Result<()> {
    let dir = work.join("echo");
    let mut echo = spawn(exe, &dir)?;
    let stats = closed(&echo, connections, in_flight, threads, secs).await;
    echo.stop(Duration::from_secs(10));
    let stats = stats?;
    let h = &stats.latency_us;
    println!(
        "echo {connections}x{in_flight} threads={threads}: rps={:.0} client_cpu_us_per_request={:.3} p50={}us p99={}us request={}B unexpected={:?}",
        stats.requests_per_s(),
        stats.cpu_us_per_request(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        raw::Echo::new().request_len(),
        stats.unexpected,
    );
    Ok(())
}
