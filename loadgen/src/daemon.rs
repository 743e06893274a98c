//! Starting and stopping a real `slsd` for quickstart, tests and benches: a child process on a
//! free loopback port with its own data directory. Only the process started here is ever
//! signalled, by its own id. Once it runs, [`crate::harness`] connects to it with a role,
//! enrols and logs in.

use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sls_protocol::Role;

use crate::harness::{Client, Pool};
use crate::run::Target;

/// Per-user and per-client rate limits high enough that one simulated user per address, and an
/// attacker's bursts, meet the lockout rather than the limiter.
pub const GENEROUS_LIMITS: [&str; 4] = ["--rate-per-user", "1000", "--rate-per-client", "1000"];

/// No per-user or per-client rate limit at all.
pub const NO_LIMITS: [&str; 4] = ["--rate-per-user", "0", "--rate-per-client", "0"];

/// A simulated fleet connects from one loopback address: its frontends and its (up to 10,000)
/// IB Key apps may all be live at once, past the default per-address cap of 1,000, and connect
/// faster than the default 100 handshakes a second from one address.
pub const ONE_ADDRESS: [&str; 4] = [
    "--max-connections-per-address",
    "20000",
    "--handshakes-per-address",
    "0",
];

/// A running `slsd` child (or another program that announces itself the same way, see
/// [`Daemon::spawn`]).
pub struct Daemon {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its stderr log file.
    pub log: PathBuf,
    /// What [`Daemon::restart`] runs again.
    program: PathBuf,
    args: Vec<OsString>,
    /// A temporary data directory this handle owns; removed after the child is gone (fields
    /// drop after [`Drop::drop`] has killed it).
    _temp: Option<tempfile::TempDir>,
}

/// Finds the `slsd` binary: `$SLSD`, or beside this executable (the same cargo target
/// directory), or in the test harness's parent directory. Builds it with cargo if it is not
/// there yet (a fresh clone after `cargo run -p sls-loadgen`).
pub fn find_slsd() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("SLSD") {
        return Ok(PathBuf::from(p));
    }
    find_built("slsd", &["-p", "sls-daemon", "--bin", "slsd"])
}

/// Finds a binary of this workspace by its path under the cargo target's profile directory
/// (`slsctl`, `examples/dsc_login`), beside this executable or in the test harness's parent
/// directory; builds it with `cargo build <build>` (in this executable's profile) when it is
/// not there yet.
pub fn find_built(path: &str, build: &[&str]) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join(path);
    if candidate.exists() {
        return Ok(candidate);
    }
    let release = dir.ends_with("release");
    eprintln!(
        "{path} is not built yet: building it with cargo ({})",
        if release { "release" } else { "debug" }
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").args(build);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running cargo to build {path}"))?;
    if !status.success() || !candidate.exists() {
        bail!(
            "could not build {path}; build it with `cargo build --release {}`",
            build.join(" ")
        );
    }
    Ok(candidate)
}

impl Daemon {
    /// Starts `slsd` on 127.0.0.1 with a free port, the data directory `data_dir`, and extra
    /// flags; waits until it says where it listens.
    pub fn start(slsd: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Daemon> {
        let mut args: Vec<OsString> = vec!["--listen".into(), "127.0.0.1:0".into()];
        args.push("--data-dir".into());
        args.push(data_dir.into());
        args.extend(extra.iter().map(OsString::from));
        Daemon::spawn(slsd, args, data_dir)
    }

    /// As [`Daemon::start`], in a fresh temporary data directory that this handle owns and
    /// removes when it is dropped: what a test needs.
    pub fn start_temp(slsd: &Path, extra: &[&str]) -> anyhow::Result<Daemon> {
        let temp = tempfile::Builder::new().prefix("slsd-").tempdir()?;
        let mut daemon = Daemon::start(slsd, temp.path(), extra)?;
        daemon._temp = Some(temp);
        Ok(daemon)
    }

    /// Starts `program` with `args` as a daemon: any program that prints `listening <addr>` on
    /// stdout once it serves, as `slsd` does (the benches' bare echo server). Its stderr goes to
    /// `<data_dir>/<program name>.log`.
    pub fn spawn(
        program: &Path,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        data_dir: &Path,
    ) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(data_dir)?;
        let name = program.file_name().unwrap_or(OsStr::new("daemon"));
        let mut log_name = name.to_owned();
        log_name.push(".log");
        let mut daemon = Daemon {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.join(log_name),
            program: program.to_path_buf(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            _temp: None,
        };
        daemon.launch(false)?;
        Ok(daemon)
    }

    /// Starts the same program again, with the same flags and data directory (after
    /// [`Daemon::crash`] or [`Daemon::stop`]; if it still runs, it is killed first). The new
    /// process listens on a new port, which `addr` follows. Its stderr is appended to the same
    /// log.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.crash();
        self.launch(true)
    }

    fn launch(&mut self, append: bool) -> anyhow::Result<()> {
        let log_file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&self.log)?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let name = self.program.display();
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log_text = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("{name} exited at start ({status}):\n{log_text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{name} did not start within 60 s");
            }
        };
        self.addr = addr
            .parse()
            .with_context(|| format!("{name} printed a bad address {addr:?}"))?;
        self.child = Some(child);
        Ok(())
    }

    /// Where and how a client reaches it.
    pub fn target(&self) -> Target {
        Target::local(self.addr, self.tls_dir())
    }

    /// One connection with `role`'s certificate (none for [`Role::Device`]) and one pipeline.
    pub async fn connect(&self, role: Role) -> anyhow::Result<Client> {
        Client::connect(&self.target(), role).await
    }

    /// `n` connections with `role`'s certificate on one client endpoint, one pipeline each.
    pub async fn pool(&self, role: Role, n: usize) -> anyhow::Result<Pool> {
        Pool::connect(&self.target(), role, n).await
    }

    /// The daemon's certificates directory: its `--tls-dir`, else `<data dir>/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.args
            .iter()
            .position(|a| a == "--tls-dir")
            .and_then(|i| self.args.get(i + 1))
            .map_or_else(|| self.data_dir.join("tls"), PathBuf::from)
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
