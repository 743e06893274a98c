//! Reaching a daemon: where nothing listens, the run ends by itself within the connect timeout
//! with one line naming the address (exit 2), instead of waiting out QUIC's idle timeout.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_run_where_nothing_listens_ends_naming_the_address() {
    let d = crate::slsd(&[]);
    let tls = d.tls_dir();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("localhost:{port}");
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(["run", "--target", &target, "--tls-dir"])
        .arg(&tls)
        .args([
            "--connect-timeout",
            "2s",
            "--duration",
            "1s",
            "--users",
            "10",
        ])
        .output()
        .unwrap();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // A host name is resolved: the line names the address it stands for.
    assert!(
        stderr.contains(&format!("no slsd answering at 127.0.0.1:{port} within 2s"))
            || stderr.contains(&format!("no slsd answering at [::1]:{port} within 2s")),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
