//! Requests in flight and the executor that drives them: each request is a future over a
//! clone of the core, as the daemon's handler is (call the core, then wait for its ticket to
//! be durable, then reply), polled with a no-op waker in the order the seed chooses. The
//! embedded store's futures are ready until the durable wait, so a request is judged on its
//! first poll: that is when the model is told. Its reply leaves when a later poll finds its
//! records durable; only then is it acknowledged.

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use sls_engine::{BeginRequest, BeginResult, Core, CoreError, Error, MemoryStore, Store};
use sls_protocol::{ApprovalMethod, Challenge, DeviceId, DeviceKind, Purpose, TxnId, Verdict};

use crate::journal::SimJournal;
use crate::model::{Answer, Began};

/// The core under simulation.
pub type SimCore = Core<MemoryStore<SimJournal>>;

/// The frontends' address (rate limits are off in the simulation).
pub const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

/// Polls `f` once: `Some` if it was ready (the embedded store's reads are).
pub fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// What a request asks.
#[derive(Debug, Clone)]
pub enum Req {
    /// A frontend's `begin` on a device (`amount` > 0: a withdrawal).
    Begin {
        /// The user.
        user: String,
        /// The device.
        device: DeviceId,
        /// Its kind.
        kind: DeviceKind,
        /// The withdrawal's amount, 0 for a login.
        amount: u64,
        /// Whether the IB Key app is connected for a push.
        push_ready: bool,
    },
    /// A frontend's typed answer.
    Answer {
        /// The transaction.
        txn: TxnId,
        /// What was typed.
        response: String,
        /// Right, wrong or malformed.
        answer: Answer,
        /// The device's kind.
        kind: DeviceKind,
    },
    /// The IB Key app's answer to a push.
    Push {
        /// The app's device.
        device: DeviceId,
        /// The transaction.
        txn: TxnId,
        /// Approve or decline.
        approve: bool,
        /// The number typed.
        number: u8,
        /// The MAC.
        mac: [u8; 32],
        /// Right, wrong (number or MAC), or declined.
        answer: Answer,
    },
    /// A frontend's `await` of a push's decision.
    Await {
        /// The transaction.
        txn: TxnId,
    },
    /// A failed password reported by the frontend.
    PasswordFailed {
        /// The user (known or not).
        user: String,
    },
    /// Client services lift a lock.
    Unlock {
        /// The user.
        user: String,
    },
    /// Client services issue a temporary code (R13).
    IssueTemp {
        /// The user.
        user: String,
    },
    /// Client services reactivate a permanent device (R15).
    Reactivate {
        /// The user.
        user: String,
        /// The device.
        device: DeviceId,
    },
    /// A replacement DSC+ ordered with a new key and PIN (R16).
    Order {
        /// The user.
        user: String,
        /// The new card's key.
        secret: Vec<u8>,
        /// Its PIN.
        pin: String,
    },
    /// The replacement shipped (R16).
    Ship {
        /// The user.
        user: String,
        /// The replacement.
        device: DeviceId,
    },
    /// Client services revoke, suspend or resume a device.
    Device {
        /// The user.
        user: String,
        /// The device.
        device: DeviceId,
        /// What to do.
        op: DeviceOp,
    },
}

/// What client services do to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOp {
    /// Revoke for good.
    Revoke,
    /// Suspend.
    Suspend,
    /// Resume a suspended one.
    Resume,
}

/// A challenge as the user sees it, to answer later.
#[derive(Debug, Clone)]
pub enum Shown {
    /// A question for the card or the app (OCRA).
    Question(String),
    /// A temporary code to type (R13).
    Code,
    /// A push: the number shown and the push's nonce.
    Push {
        /// The number.
        number: u8,
        /// The nonce.
        nonce: [u8; 16],
    },
}

/// What the core answered, before the durable wait.
#[derive(Debug, Clone)]
pub enum Judged {
    /// A `begin`'s outcome, and the challenge shown if any.
    Began(Began, Option<Shown>),
    /// A verdict.
    Verdict(Verdict),
    /// An admin call's outcome (`Err`: the error's text).
    Done(Result<(), String>),
    /// A device issued or ordered, and a temporary code's code.
    Issued(DeviceId, String),
}

/// A request's reply: what was judged, its ticket, and whether it left acknowledged.
#[derive(Debug)]
pub struct Reply {
    /// What the core answered (`None`: the core itself failed, e.g. a refused write).
    pub judged: Option<Judged>,
    /// The ticket waited for.
    pub ticket: Option<u64>,
    /// The durable wait's outcome (`Err`: answered `UNAVAILABLE`, not acknowledged).
    pub durable: Result<(), String>,
}

type Probe = Rc<RefCell<Option<(Option<Judged>, Option<u64>)>>>;

/// A request in flight.
pub struct Task {
    /// Its number (the order of submission).
    pub id: u64,
    /// What it asks.
    pub req: Req,
    /// Set when the core has judged it, before the durable wait.
    pub probe: Probe,
    /// Polled at least once.
    pub started: bool,
    /// For an `await`: the decision the model knew when it was read.
    pub expect: Option<Verdict>,
    fut: Pin<Box<dyn Future<Output = Reply>>>,
}

impl Task {
    /// Polls once.
    pub fn poll(&mut self) -> Poll<Reply> {
        self.started = true;
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }
}

fn error_text(e: &Error) -> String {
    e.to_string()
}

fn began(r: &Result<sls_engine::Outcome<BeginResult, u64>, Error>) -> (Began, Option<Shown>) {
    match r {
        Ok(o) => match &o.value {
            BeginResult::Challenge {
                txn,
                challenge,
                expires_at_ms,
                push,
                ..
            } => {
                let shown = match (challenge, push) {
                    (Challenge::Numeric(q), _) => Some(Shown::Question(q.clone())),
                    (Challenge::Push { number }, Some(p)) => Some(Shown::Push {
                        number: *number,
                        nonce: p.nonce,
                    }),
                    (Challenge::Code, _) => Some(Shown::Code),
                    _ => None,
                };
                (
                    Began::Challenge {
                        txn: *txn,
                        expires: *expires_at_ms,
                    },
                    shown,
                )
            }
            BeginResult::Verdict(v) => (Began::Verdict(*v), None),
            BeginResult::Devices(d) => (Began::Error(format!("devices {}", d.len())), None),
        },
        Err(Error::Core(CoreError::DeviceRevoked)) => (Began::Revoked, None),
        Err(Error::Core(CoreError::DeviceSuspended)) => (Began::Suspended, None),
        Err(e) => (Began::Error(error_text(e)), None),
    }
}

/// A new task for `req` on `core`.
pub fn spawn(core: &SimCore, id: u64, req: Req) -> Task {
    let probe: Probe = Rc::default();
    let (c, p, r) = (core.clone(), probe.clone(), req.clone());
    let fut = async move {
        let set = |j: Option<Judged>, t: Option<u64>| {
            *p.borrow_mut() = Some((j, t));
        };
        match r {
            Req::Begin {
                user,
                device,
                amount,
                push_ready,
                ..
            } => {
                let purpose = if amount > 0 {
                    Purpose::Withdrawal { amount_usd: amount }
                } else {
                    Purpose::Login
                };
                let req = BeginRequest {
                    user: &user,
                    purpose,
                    device: Some(device),
                    client: IP,
                };
                let r = c.begin(&req, push_ready).await;
                let ticket = r.as_ref().ok().and_then(|o| o.ticket);
                let (b, shown) = began(&r);
                let store_failed = matches!(&r, Err(Error::Store(_)));
                set((!store_failed).then_some(Judged::Began(b, shown)), ticket);
                finish(&c, ticket).await
            }
            Req::Answer { txn, response, .. } => {
                let r = c.answer(txn, &response, IP).await;
                verdict(&c, &set, r.map_err(Error::Store)).await
            }
            Req::Push {
                device,
                txn,
                approve,
                number,
                mac,
                ..
            } => {
                let r = c
                    .push_answer(
                        device,
                        txn,
                        approve,
                        ApprovalMethod::Biometric,
                        number,
                        &mac,
                    )
                    .await;
                verdict(&c, &set, r.map_err(Error::Store)).await
            }
            Req::Await { txn } => {
                // The decision is read on the first poll; the reply waits for it to be durable
                // inside the core (its fence).
                let r = c.txn_verdict(txn).await;
                let (j, durable) = match r {
                    Ok(v) => (Some(Judged::Verdict(v)), Ok(())),
                    Err(e) => (None, Err(e.to_string())),
                };
                set(j.clone(), None);
                Reply {
                    judged: j,
                    ticket: None,
                    durable,
                }
            }
            Req::PasswordFailed { user } => {
                let r = c.password_failed(&user, IP).await;
                verdict(&c, &set, r).await
            }
            Req::Unlock { user } => {
                let r = c.unlock(&user).await;
                done(&c, &set, r).await
            }
            Req::IssueTemp { user } => match c.issue_temp_code(&user).await {
                Ok(o) => {
                    set(Some(Judged::Issued(o.value.0, o.value.1)), o.ticket);
                    finish(&c, o.ticket).await
                }
                Err(e) => done(&c, &set, Err(e)).await,
            },
            Req::Order { user, secret, pin } => {
                match c.order_replacement(&user, &secret, &pin).await {
                    Ok(o) => {
                        set(Some(Judged::Issued(o.value, String::new())), o.ticket);
                        finish(&c, o.ticket).await
                    }
                    Err(e) => done(&c, &set, Err(e)).await,
                }
            }
            Req::Reactivate { user, device } => {
                let r = c.reactivate(&user, device).await;
                done(&c, &set, r).await
            }
            Req::Ship { user, device } => {
                let r = c.ship(&user, device).await;
                done(&c, &set, r).await
            }
            Req::Device { user, device, op } => {
                let r = match op {
                    DeviceOp::Revoke => c.revoke_device(&user, device, false, 1).await,
                    DeviceOp::Suspend => c.revoke_device(&user, device, true, 4).await,
                    DeviceOp::Resume => c.resume_device(&user, device).await,
                };
                done(&c, &set, r).await
            }
        }
    };
    Task {
        id,
        req,
        probe,
        started: false,
        expect: None,
        fut: Box::pin(fut),
    }
}

async fn verdict(
    c: &SimCore,
    set: &impl Fn(Option<Judged>, Option<u64>),
    r: Result<sls_engine::Outcome<Verdict, u64>, Error>,
) -> Reply {
    match r {
        Ok(o) => {
            set(Some(Judged::Verdict(o.value)), o.ticket);
            finish(c, o.ticket).await
        }
        Err(Error::Core(e)) => {
            set(Some(Judged::Done(Err(e.to_string()))), None);
            finish(c, None).await
        }
        Err(Error::Store(e)) => store_failed(set, e.to_string()),
    }
}

async fn done(
    c: &SimCore,
    set: &impl Fn(Option<Judged>, Option<u64>),
    r: Result<sls_engine::Outcome<(), u64>, Error>,
) -> Reply {
    match r {
        Ok(o) => {
            set(Some(Judged::Done(Ok(()))), o.ticket);
            finish(c, o.ticket).await
        }
        Err(Error::Core(e)) => {
            set(Some(Judged::Done(Err(e.to_string()))), None);
            finish(c, None).await
        }
        Err(Error::Store(e)) => store_failed(set, e.to_string()),
    }
}

fn store_failed(set: &impl Fn(Option<Judged>, Option<u64>), why: String) -> Reply {
    set(None, None);
    Reply {
        judged: None,
        ticket: None,
        durable: Err(why),
    }
}

/// The daemon's last hop: wait for the ticket, then reply (the judged value is in the probe).
async fn finish(c: &SimCore, ticket: Option<u64>) -> Reply {
    let durable = match ticket {
        Some(t) => c.store().durable(t).await.map_err(|e| e.to_string()),
        None => Ok(()),
    };
    Reply {
        judged: None,
        ticket,
        durable,
    }
}

/// The journal's handle inside a core (for the simulator's faults and restarts).
pub fn journal(core: &SimCore) -> &SimJournal {
    core.store().journal()
}

/// A fresh core over `store`.
pub fn core_over(
    config: sls_engine::CoreConfig,
    store: MemoryStore<SimJournal>,
    clock: &sls_engine::FakeClock,
    entropy_seed: u64,
) -> SimCore {
    Core::new(
        config,
        store,
        Arc::new(clock.clone()),
        Arc::new(sls_engine::SeededEntropy::new(entropy_seed)),
    )
}
