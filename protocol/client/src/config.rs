//! How a [`crate::Client`] reaches the daemon: its nodes, the name their certificate carries,
//! the certificates, and the time it gives each step.

use std::time::Duration;

use sls_protocol::Role;

use crate::error::SetupError;
use crate::tls::ClientTls;

/// The port `slsd` listens on by default.
pub const DEFAULT_PORT: u16 = 7443;

/// One node as configured: a host name or an IP address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// A DNS name or an IP address (without brackets).
    pub host: String,
    /// The UDP port.
    pub port: u16,
}

impl Node {
    /// Parses `host:port`, `[v6]:port`, a bare `host` or `v6` address (port 7443).
    ///
    /// ```
    /// use sls_client::Node;
    /// assert_eq!(Node::parse("sls.internal:7443").unwrap().host, "sls.internal");
    /// assert_eq!(Node::parse("[::1]:9000").unwrap().port, 9000);
    /// assert_eq!(Node::parse("10.0.0.7").unwrap().port, 7443);
    /// ```
    ///
    /// # Errors
    /// An empty host, or a port that is not a number from 1 to 65535.
    pub fn parse(s: &str) -> Result<Node, SetupError> {
        let bad = |why: &str| SetupError::Config(format!("node address {s:?}: {why}"));
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("no closing ]"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
                ),
            }
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 address.
            (s, None)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        Ok(Node {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything a [`crate::Client`] needs. Build it with [`ClientConfig::new`] and the `with_*`
/// methods; the defaults are what PROTOCOL.md asks of a client.
///
/// ```no_run
/// # fn main() -> Result<(), sls_client::SetupError> {
/// use std::time::Duration;
/// use sls_client::{ClientConfig, ClientTls, Role};
///
/// let tls = ClientTls::from_dir("/etc/sls/tls".as_ref(), Role::Frontend)?;
/// let config = ClientConfig::new(["sls-a.internal:7443", "sls-b.internal:7443"], tls)?
///     .with_server_name("sls.internal")
///     .with_call_timeout(Duration::from_secs(3));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The nodes, tried in order: when one fails, the next.
    pub nodes: Vec<Node>,
    /// The name to verify the daemon's certificate against (and send as SNI). `None`: each
    /// node's own host, as written (a DNS name or an IP address).
    pub server_name: Option<String>,
    /// The certificates: a role certificate for `sls/1`, none for an IB Key app.
    pub tls: ClientTls,
    /// The role asked for; the daemon must grant it or the connection is refused.
    pub role: Role,
    /// Time for one node's handshake and `Hello`/`Welcome` (default 5 s).
    pub connect_timeout: Duration,
    /// Time for one call, reconnects and retries included (default 10 s). An `Await` is given
    /// its own wait on top.
    pub call_timeout: Duration,
    /// How long an `Answer`'s reply is waited for (default 2 s, at most `call_timeout`)
    /// before its transaction's verdict is read on the next node ([`crate::Client::answer`]):
    /// the daemon knows the first verdict for its replay window only (5 s by default after
    /// the judgement), so the read must come well within it.
    pub answer_wait: Duration,
    /// A node that stops answering is given up after this (QUIC idle timeout, default 15 s).
    pub idle_timeout: Duration,
    /// The shortest and longest wait between rounds of reconnects (default 100 ms and 5 s,
    /// doubling, with jitter).
    pub backoff: (Duration, Duration),
    /// Whether a `rate_limited` verdict is waited out and the request sent again while the
    /// call's time allows (default true: a rate-limited request did nothing, PROTOCOL.md §8).
    pub wait_rate_limited: bool,
    /// The agent text of `Hello`, for the daemon's logs.
    pub agent: String,
    /// Where the client's UDP socket binds (default `0.0.0.0:0`, or `[::]:0` when the first
    /// node is an IPv6 address).
    pub bind: Option<std::net::SocketAddr>,
}

impl ClientConfig {
    /// A configuration for these nodes with these certificates; the role is the certificate's
    /// (frontend when the material has a certificate; use [`ClientConfig::with_role`] for an
    /// admin), the device role without one.
    ///
    /// # Errors
    /// No node, or a node address that does not parse.
    pub fn new<I, S>(nodes: I, tls: ClientTls) -> Result<ClientConfig, SetupError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes = nodes
            .into_iter()
            .map(|n| Node::parse(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(SetupError::Config("no node address given".into()));
        }
        let role = match tls.identity {
            Some(_) => Role::Frontend,
            None => Role::Device,
        };
        Ok(ClientConfig {
            nodes,
            server_name: None,
            tls,
            role,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            answer_wait: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(15),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            wait_rate_limited: true,
            agent: format!("sls-client/{}", env!("CARGO_PKG_VERSION")),
            bind: None,
        })
    }

    /// Verify every node's certificate against `name` instead of the node's own host.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> ClientConfig {
        self.server_name = Some(name.into());
        self
    }

    /// The role to ask for (the certificate must name it).
    #[must_use]
    pub fn with_role(mut self, role: Role) -> ClientConfig {
        self.role = role;
        self
    }

    /// Time for one node's handshake and `Hello`.
    #[must_use]
    pub fn with_connect_timeout(mut self, t: Duration) -> ClientConfig {
        self.connect_timeout = t;
        self
    }

    /// Time for one call, retries included (default 10 s).
    #[must_use]
    pub fn with_call_timeout(mut self, t: Duration) -> ClientConfig {
        self.call_timeout = t;
        self
    }

    /// How long an `Answer`'s reply is waited for before its verdict is read on the next node
    /// (default 2 s; see [`ClientConfig::answer_wait`]).
    #[must_use]
    pub fn with_answer_wait(mut self, t: Duration) -> ClientConfig {
        self.answer_wait = t;
        self
    }

    /// Whether `rate_limited` verdicts are waited out and the request sent again.
    #[must_use]
    pub fn with_wait_rate_limited(mut self, wait: bool) -> ClientConfig {
        self.wait_rate_limited = wait;
        self
    }

    /// The agent text of `Hello`.
    #[must_use]
    pub fn with_agent(mut self, agent: impl Into<String>) -> ClientConfig {
        self.agent = agent.into();
        self
    }

    /// The name a node's certificate is verified against.
    pub(crate) fn name_for<'a>(&'a self, node: &'a Node) -> &'a str {
        self.server_name.as_deref().unwrap_or(&node.host)
    }
}
