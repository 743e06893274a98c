//! Replay: a user's records applied in order rebuild the user's durable state (the embedded
//! store's start-up, from its snapshot then its journals), and a user's state written out as
//! the records that rebuild it (a snapshot). Open challenges are never recorded: a restart
//! voids them and users start over (R12).

use crate::config::CoreConfig;
use crate::lockout;
use crate::record::{DeviceState, Record};
use crate::user::{device_suite, Device, Source, UserState};
use crate::UserSpec;

/// Applies a journalled record of this user (start-up replay). The user record itself is
/// the store's ([`UserState::enrol`]); shares are the store's too.
pub fn apply(u: &mut UserState, record: &Record, config: &CoreConfig) {
    match record {
        Record::User {
            entity,
            identification,
            primary,
            equity_usd,
            name,
        } => {
            // A later record of an enrolled user is an `UpdateUser`: its whole
            // account data.
            let was = u.enrolled.then(|| u.extra.take());
            u.enrol(&UserSpec {
                name: name.clone(),
                entity: entity.clone(),
                identification: identification.clone(),
                primary: *primary,
                equity_usd: *equity_usd,
            });
            if let Some(Some(mut old)) = was {
                match &mut u.extra {
                    Some(x) => {
                        x.withdrawals = std::mem::take(&mut old.withdrawals);
                        x.activation = old.activation.take();
                        x.activation_wrong = old.activation_wrong;
                    }
                    None => {
                        old.entity.clear();
                        old.identification.clear();
                        old.equity_usd = 0;
                        u.extra = Some(old);
                    }
                }
            }
        }
        Record::Device {
            id,
            kind,
            state,
            secret,
            pin_hash,
            suite,
            since_ms,
            ..
        } => {
            let suite = device_suite(*kind, suite).ok().flatten();
            let d = Device::new(id.0, *kind, *state, suite, secret, pin_hash, *since_ms);
            u.devices.retain(|x| x.id != id.0);
            u.devices.reserve_exact(1);
            u.devices.push(d);
        }
        Record::DeviceState {
            id, state, at_ms, ..
        } => {
            if let Ok(d) = u.device_mut(id.0) {
                d.state = *state;
                if *state == DeviceState::Shipped {
                    d.since_ms = *at_ms;
                }
            }
        }
        Record::Stopped { id, state, .. } => {
            if let Ok(d) = u.device_mut(id.0) {
                d.state = *state;
            }
        }
        Record::Source {
            id, owner, device, ..
        } => {
            if let Ok(d) = u.device_mut(id.0) {
                d.source = Some(Box::new(Source {
                    owner: owner.clone(),
                    device: device.0,
                }));
            }
        }
        Record::DeviceRemoved { id, .. } => u.devices.retain(|d| d.id != id.0),
        Record::Failure { at_ms, .. } => {
            lockout::count_failure(u, *at_ms, config);
        }
        Record::Reset { .. } => lockout::reset(u),
        Record::OptOut { out, .. } => u.opted_out = *out,
        Record::Withdrawal {
            amount_usd, at_ms, ..
        } => u
            .extra
            .get_or_insert_with(Default::default)
            .withdrawals
            .push((*at_ms, *amount_usd)),
        Record::WithdrawalTxn {
            txn,
            amount_usd,
            at_ms,
            ..
        } => u
            .extra
            .get_or_insert_with(Default::default)
            .withdrawn_by
            .push((txn.0, *at_ms, *amount_usd)),
        Record::WithdrawalReleased {
            txn,
            amount_usd,
            at_ms,
            ..
        } => crate::withdrawal::replay_release(u, *txn, *at_ms, *amount_usd),
        Record::Share { .. } | Record::Decoy { .. } => {}
    }
}

/// This user's durable state as records; replaying them rebuilds it.
pub fn records(u: &UserState, name: &str, out: &mut Vec<Record>) {
    let x = u.extra.as_deref();
    out.push(Record::User {
        name: name.to_owned(),
        entity: x.map(|x| x.entity.clone()).unwrap_or_default(),
        identification: x.map(|x| x.identification.clone()).unwrap_or_default(),
        primary: u.primary,
        equity_usd: x.map_or(0, |x| x.equity_usd),
    });
    for d in &u.devices {
        out.push(d.record(name, d.source.as_deref().map_or(0, |s| s.device)));
        out.extend(d.source_record(name));
    }
    for t in u.failures.iter().flat_map(|log| log.iter()) {
        out.push(Record::Failure {
            user: name.to_owned(),
            at_ms: *t,
        });
    }
    if u.opted_out {
        out.push(Record::OptOut {
            user: name.to_owned(),
            out: true,
        });
    }
    for (at, amount) in x.map(|x| x.withdrawals.as_slice()).unwrap_or_default() {
        out.push(Record::Withdrawal {
            user: name.to_owned(),
            amount_usd: *amount,
            at_ms: *at,
        });
    }
    for (txn, at, amount) in x.map(|x| x.withdrawn_by.as_slice()).unwrap_or_default() {
        out.push(Record::WithdrawalTxn {
            user: name.to_owned(),
            txn: sls_protocol::TxnId(*txn),
            amount_usd: *amount,
            at_ms: *at,
        });
    }
}
