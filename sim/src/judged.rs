//! What the simulator tells the model once the core has judged a request (its first poll),
//! and what the world learns from it (new devices, challenges to answer).

use sls_protocol::{DeviceId, DeviceKind};

use crate::requests::{Judged, Req};
use crate::sim::{Check, Open, Sim};
use crate::world::{Device, Role};

impl Sim {
    /// Tells the model what the core judged.
    pub(crate) fn judged(
        &mut self,
        req: &Req,
        j: Option<Judged>,
        ticket: Option<u64>,
        now: u64,
    ) -> Check {
        let Some(j) = j else {
            // The store refused the change (a write fault): nothing was changed.
            self.count("refused");
            return if ticket.is_some() {
                Err("a refused change has a ticket".into())
            } else {
                Ok(())
            };
        };
        match (req, j) {
            (
                Req::Begin {
                    user,
                    device,
                    amount,
                    ..
                },
                Judged::Began(b, shown),
            ) => {
                self.touched.push(user.clone());
                if let (crate::model::Began::Challenge { txn, .. }, Some(shown)) = (&b, shown) {
                    let u = self.user_index(user);
                    self.open.insert(
                        txn.0,
                        Open {
                            user: u,
                            device: *device,
                            shown,
                        },
                    );
                }
                self.count("begin");
                self.model.begin(user, *device, *amount, now, b)
            }
            (
                Req::Answer {
                    txn, answer, kind, ..
                },
                Judged::Verdict(v),
            ) => {
                self.count_verdict(&v);
                self.count_withdrawal(*txn, &v);
                self.touch_txn(*txn);
                self.model.answer(*txn, *answer, *kind, now, v, ticket)
            }
            (Req::Push { txn, answer, .. }, Judged::Verdict(v)) => {
                self.count_verdict(&v);
                self.count_withdrawal(*txn, &v);
                self.touch_txn(*txn);
                self.model
                    .answer(*txn, *answer, DeviceKind::IbKey, now, v, ticket)
            }
            (Req::PasswordFailed { user }, Judged::Verdict(v)) => {
                self.touched.push(user.clone());
                self.count_verdict(&v);
                if self.users.iter().any(|u| &u.name == user) {
                    self.model.password_failed(user, now, v, ticket)
                } else {
                    // No user enumeration: counted as a shadow (a decoy record makes it cost
                    // a write like a known user's); no user is made (checked after the step).
                    Ok(())
                }
            }
            (Req::Unlock { user }, Judged::Done(r)) => {
                self.touched.push(user.clone());
                r.map_err(|e| format!("unlock {user}: {e}"))?;
                self.model.unlocked(user, ticket)
            }
            (Req::Device { user, device, op }, Judged::Done(r)) => {
                self.touched.push(user.clone());
                self.device_done(user, *device, *op, r, ticket, now)
            }
            (Req::IssueTemp { user }, Judged::Issued(id, code)) => {
                self.touched.push(user.clone());
                self.count("temp_issued");
                self.add_device(
                    user,
                    id,
                    DeviceKind::TempCode,
                    code.into_bytes(),
                    "",
                    Role::Temp,
                    ticket,
                );
                self.model.temp_issued(user, id, now, ticket)
            }
            (Req::Order { user, secret, pin }, Judged::Issued(id, _)) => {
                self.touched.push(user.clone());
                self.count("replacement_ordered");
                let role = Role::Replacement { shipped: None };
                self.add_device(
                    user,
                    id,
                    DeviceKind::DscPlus,
                    secret.clone(),
                    pin,
                    role,
                    ticket,
                );
                self.model.ordered(user, id, ticket)
            }
            (Req::Ship { user, device }, Judged::Done(r)) => {
                self.touched.push(user.clone());
                let u = self.user_index(user);
                let shipped = self.users[u].devices.iter().any(|d| {
                    d.id == *device && matches!(d.role, Role::Replacement { shipped: Some(_) })
                });
                if r.is_err() && ticket.is_none() && shipped {
                    // Two shipments in flight: the second is refused.
                    return Ok(());
                }
                r.map_err(|e| format!("ship {user}'s replacement: {e}"))?;
                self.count("replacement_shipped");
                for d in &mut self.users[u].devices {
                    if d.id == *device {
                        d.role = Role::Replacement { shipped: ticket };
                    }
                }
                self.model.shipped(user, *device, now, ticket)
            }
            (Req::Reactivate { user, device }, Judged::Done(r)) => {
                self.touched.push(user.clone());
                if r.is_ok() {
                    self.count("reactivated");
                }
                self.model.reactivated(user, *device, now, r, ticket)
            }
            (Req::IssueTemp { .. } | Req::Order { .. }, Judged::Done(Err(_))) => Ok(()),
            (req, j) => Err(format!("{req:?} judged {j:?}")),
        }
    }

    fn device_done(
        &mut self,
        user: &str,
        device: DeviceId,
        op: crate::requests::DeviceOp,
        r: Result<(), String>,
        ticket: Option<u64>,
        now: u64,
    ) -> Check {
        use crate::model::Standing;
        use crate::requests::DeviceOp;
        let was = self.model.standing(user, device);
        if r.is_err() && ticket.is_none() && self.model.replaced(user, device, now) {
            // R16: a card its replacement retired is refused (retired), not stopped.
            return Ok(());
        }
        let to = match (op, was) {
            (DeviceOp::Revoke, Some(Standing::Active | Standing::Suspended)) => Standing::Revoked,
            (DeviceOp::Suspend, Some(Standing::Active)) => Standing::Suspended,
            (DeviceOp::Resume, Some(Standing::Suspended)) => Standing::Active,
            _ => {
                // Refused as the rules say (revoked for good; only active suspends, only
                // suspended resumes).
                return match r {
                    Err(_) if ticket.is_none() => Ok(()),
                    other => Err(format!("{op:?} of a {was:?} device gave {other:?}")),
                };
            }
        };
        r.map_err(|e| format!("{op:?} of {user}'s device: {e}"))?;
        self.count("device_change");
        self.model.device(user, device, to, ticket)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_device(
        &mut self,
        user: &str,
        id: DeviceId,
        kind: DeviceKind,
        secret: Vec<u8>,
        pin: &str,
        role: Role,
        ticket: Option<u64>,
    ) {
        let u = self.user_index(user);
        self.users[u].devices.push(Device {
            id,
            kind,
            secret,
            pin: pin.to_string(),
            role,
            lsn: ticket.unwrap_or(0),
        });
    }

    fn count_verdict(&mut self, v: &sls_protocol::Verdict) {
        let name = v.name();
        self.count(name);
        if let sls_protocol::Verdict::Accepted { device, kind, .. } = v {
            let replacement = self
                .users
                .iter()
                .flat_map(|u| &u.devices)
                .any(|d| d.id == *device && matches!(d.role, Role::Replacement { .. }));
            if *kind == DeviceKind::TempCode {
                self.count("accepted_temp_code");
            } else if replacement {
                self.count("accepted_replacement");
            }
        }
    }

    fn count_withdrawal(&mut self, txn: sls_protocol::TxnId, v: &sls_protocol::Verdict) {
        let amount = self.model.txns.get(&txn.0).map_or(0, |t| t.amount);
        if amount > 0 && matches!(v, sls_protocol::Verdict::Accepted { .. }) {
            self.count("withdrawal_accepted");
        }
    }

    fn touch_txn(&mut self, txn: sls_protocol::TxnId) {
        if let Some(t) = self.model.txns.get(&txn.0) {
            self.touched.push(t.user.clone());
        }
    }
}
