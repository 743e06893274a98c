//! The bus between the nodes that share a cluster: Redis pub/sub on one channel.
//!
//! A node publishes with `PUBLISH` on its cluster connection; Redis Cluster forwards every
//! published message to every node of the cluster, so a subscriber connected to any one node,
//! master or replica, hears all of them. [`listen`] keeps one such subscription: it connects
//! to the seeds in turn, subscribes, checks the connection with a `PING` every
//! [`PING_EVERY`], and connects again (to the next seed) when it breaks.
//!
//! Pub/sub is at most once: what is published while a subscriber reconnects is lost to it.
//! [`Heard::Resubscribed`] tells the listener each time it may have missed something, so that
//! it can look again at what it was waiting for.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use redis::cluster_async::ClusterConnection;
use sls_engine::StoreError;

use crate::{unavailable, RedisStore};

/// How often the subscription checks that its connection still answers.
pub const PING_EVERY: Duration = Duration::from_secs(1);

/// What a subscription hears.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// A message published on the channel (by any node, this one included).
    Message(Vec<u8>),
    /// The subscription is (again) in place; anything published before may have been missed.
    Resubscribed,
}

/// Publishes on the nodes' channel. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    /// The connection made at connect, and the store's home one when there is one (it may be
    /// rebuilt: `health.rs`).
    conn: ClusterConnection,
    home: std::sync::Arc<parking_lot::RwLock<Option<ClusterConnection>>>,
    channel: Vec<u8>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("channel", &String::from_utf8_lossy(&self.channel))
            .finish()
    }
}

impl Bus {
    /// Publishes `payload` to every node listening.
    ///
    /// # Errors
    /// The cluster could not be reached.
    pub async fn publish(&self, payload: &[u8]) -> Result<(), StoreError> {
        let mut c = self
            .home
            .read()
            .clone()
            .unwrap_or_else(|| self.conn.clone());
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl RedisStore {
    /// The bus of the nodes sharing this store's namespace.
    pub fn bus(&self) -> Bus {
        Bus {
            conn: self.conn.clone(),
            home: self.home.clone(),
            channel: self.keys.bus(),
        }
    }
}

/// Listens on the bus of `prefix` through any of `nodes` until `stop` resolves, handing what
/// it hears to `heard`. Never returns an error: it reconnects, waiting `retry` between rounds
/// of the seeds, and says so with [`Heard::Resubscribed`].
pub async fn listen(
    nodes: Vec<String>,
    prefix: &str,
    retry: Duration,
    mut heard: impl FnMut(Heard) + Send,
    stop: impl Future<Output = ()> + Send,
) {
    let channel = crate::keys::Keys::new(prefix).bus();
    let forever = async {
        loop {
            for node in &nodes {
                match subscribe(node, &channel).await {
                    Ok((sink, stream)) => {
                        heard(Heard::Resubscribed);
                        serve(sink, stream, &mut heard).await;
                        tracing::warn!(node = %node, "bus subscription lost: reconnecting");
                    }
                    Err(e) => tracing::debug!(node = %node, "bus: {e}"),
                }
            }
            tokio::time::sleep(retry).await;
        }
    };
    tokio::select! {
        () = forever => {}
        () = stop => {}
    }
}

async fn subscribe(
    node: &str,
    channel: &[u8],
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let info = redis::IntoConnectionInfo::into_connection_info(node)?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let client = redis::Client::open(info)?;
    let pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    let (mut sink, stream) = pubsub.split();
    tokio::time::timeout(Duration::from_secs(2), sink.subscribe(channel))
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    Ok((sink, stream))
}

/// Hands on messages until the connection ends or stops answering pings.
async fn serve(
    mut sink: redis::aio::PubSubSink,
    mut stream: redis::aio::PubSubStream,
    heard: &mut (impl FnMut(Heard) + Send),
) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(m) => heard(Heard::Message(m.get_payload_bytes().to_vec())),
                None => return,
            },
            _ = tick.tick() => {
                let ping = tokio::time::timeout(PING_EVERY * 2, sink.ping::<redis::Value>());
                if !matches!(ping.await, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}
