//! Starting and stopping a real `slsd` for quickstart and tests: a child process on a free
//! loopback port with its own data directory. Only the process started here is ever signalled,
//! by its own id.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A running `slsd` child.
pub struct Daemon {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its stderr log file.
    pub log: PathBuf,
}

/// Finds the `slsd` binary: `$SLSD`, or beside this executable (the same cargo target
/// directory), or in the test harness's parent directory. Builds it with cargo if it is not
/// there yet (a fresh clone after `cargo run -p sls-loadgen`).
pub fn find_slsd() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("SLSD") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join("slsd");
    if candidate.exists() {
        return Ok(candidate);
    }
    let release = dir.ends_with("release");
    eprintln!(
        "slsd is not built yet: building it with cargo ({})",
        if release { "release" } else { "debug" }
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "sls-daemon", "--bin", "slsd"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo to build slsd")?;
    if !status.success() || !candidate.exists() {
        bail!("could not build slsd; build it with `cargo build --release -p sls-daemon` or set SLSD=/path/to/slsd");
    }
    Ok(candidate)
}

impl Daemon {
    /// Starts `slsd` on 127.0.0.1 with a free port, the data directory `data_dir`, and extra
    /// flags; waits until it says where it listens.
    pub fn start(slsd: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.join("slsd.log");
        let log_file = std::fs::File::create(&log)?;
        let mut child = Command::new(slsd)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {}", slsd.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("slsd exited at start ({status}):\n{log_text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("slsd did not start within 60 s");
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("slsd printed a bad address {addr:?}"))?;
        Ok(Daemon {
            child: Some(child),
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
        })
    }

    /// The daemon's certificates directory.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// The child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal to the daemon (this child only).
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        let pid = self.pid().context("daemon already stopped")?;
        kill(Pid::from_raw(pid as i32), sig).context("signalling slsd")?;
        Ok(())
    }

    /// Stops the daemon politely (SIGTERM), then waits up to `grace` before SIGKILL. Returns
    /// whether it exited cleanly.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.crash();
    }
}
