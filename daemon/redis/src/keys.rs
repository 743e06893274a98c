//! The key layout and the Lua scripts. Every key starts with the store's prefix and is a hash
//! tag as a whole (`{prefix:kind:id}`), so each sits in one slot and the scripts touch one key.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{P:u:<user>}` | hash | `v` version (1, 2, …), `s` the encoded [`UserState`](sls_core::UserState), sealed, `w` the id of the write that set them |
//! | `{P:u:<user>}r` | string | the user's rate-limit TAT in µs (GCRA, [`sls_core::gcra`]); `PX` until it (+1 s); kept for unknown users too |
//! | `{P:u:<user>}f` | string | a marker an awaiting node writes in the user's slot before it reports a push's decision: once it is on the replicas, so is the decision (`PX` 1 s) |
//! | `{P:t:<txn hex>}` | hash | `u` user, `d` device, `x` deadline ms, `r` verdict once spent; `PX` until the deadline |
//! | `{P:s:<id>}` | hash | `v` version, `s` the encoded [`Share`](sls_core::Share), sealed, `w` as above; after a delete `v` and `w` stay (a tombstone) |
//! | `{P:n:device}`, `{P:n:share}` | string | the last id handed out (`INCR`) |
//! | `{P:ib:<device id>}` | string | the owner of an IB Key device |
//! | `{P:p:<entity>}` | string | the primary user of an entity (R18) |
//! | `{P:lockouts}` | sorted set | lockout times (score = ms), trimmed to the window |
//! | `{P:users}` | string | users created (`INCR`) |
//! | `{P:seal:}` | string | a known text sealed by the first node: each node checks its key opens it |
//! | `{P:bus:}` | pub/sub channel | messages between the nodes ([`crate::bus`]) |
//!
//! **Sealed** ([`crate::seal`]): the two versioned values. A user's state holds their devices'
//! secrets; a share holds none (names, ids, a state) but goes through the same versioned
//! read and compare-and-set, which seal whatever they write, so no value can be left out by
//! mistake, and a share cannot be forged by writing to Redis either. Keys, the transaction
//! index and the indexes hold names, ids and times only.

use sls_protocol::TxnId;

/// The names of one store's keys.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, kind: &str, id: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + kind.len() + id.len() + 4);
        k.push(b'{');
        k.extend_from_slice(self.prefix.as_bytes());
        k.push(b':');
        k.extend_from_slice(kind.as_bytes());
        k.push(b':');
        k.extend_from_slice(id);
        k.push(b'}');
        k
    }

    pub fn user(&self, name: &str) -> Vec<u8> {
        self.key("u", name.as_bytes())
    }

    /// In the user's slot (the same hash tag), outside the user's hash: written on every
    /// request, known user or not, without touching the user's version.
    pub fn rate(&self, name: &str) -> Vec<u8> {
        let mut k = self.user(name);
        k.push(b'r');
        k
    }

    pub fn txn(&self, txn: TxnId) -> Vec<u8> {
        self.key("t", format!("{:032x}", txn.0).as_bytes())
    }

    pub fn share(&self, id: u32) -> Vec<u8> {
        self.key("s", id.to_string().as_bytes())
    }

    pub fn sequence(&self, name: &str) -> Vec<u8> {
        self.key("n", name.as_bytes())
    }

    pub fn ib_owner(&self, device: u32) -> Vec<u8> {
        self.key("ib", device.to_string().as_bytes())
    }

    pub fn primary(&self, entity: &str) -> Vec<u8> {
        self.key("p", entity.as_bytes())
    }

    pub fn lockouts(&self) -> Vec<u8> {
        self.key("lockouts", b"")
    }

    pub fn users(&self) -> Vec<u8> {
        self.key("users", b"")
    }

    pub fn seal_check(&self) -> Vec<u8> {
        self.key("seal", b"")
    }

    pub fn bus(&self) -> Vec<u8> {
        self.key("bus", b"")
    }
}

/// Compare-and-set of a versioned value (a user's state, a share): `KEYS[1]` the hash,
/// `ARGV[1]` the version read (`0`: never written), `ARGV[2]` the new value (empty: delete),
/// `ARGV[3]` this write's id (unique per store). Returns the new version (0 after a delete), or
/// -1 if the version moved.
///
/// **Idempotent**: the client re-sends a script whose reply timed out; if that first send did
/// apply, the version moved, but `w` holds this write's id and the script answers success
/// instead of a conflict (which would re-run the rule: a failure counted twice, R11).
/// **No ABA**: a delete leaves a tombstone (`v` and `w`, no `s`), so the version keeps
/// counting and a node that read the deleted incarnation cannot write over a new one.
pub const CAS: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then
  if v and redis.call('HGET', KEYS[1], 'w') == ARGV[3] then
    if redis.call('HEXISTS', KEYS[1], 's') == 1 then return tonumber(v) end
    return 0
  end
  return -1
end
local nv = tonumber(ARGV[1]) + 1
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 's')
  redis.call('HSET', KEYS[1], 'v', nv, 'w', ARGV[3])
  return 0
end
redis.call('HSET', KEYS[1], 'v', nv, 's', ARGV[2], 'w', ARGV[3])
return nv
";

/// Binds a new transaction once (a bound id keeps its first user): `ARGV[1]` user,
/// `ARGV[2]` device, `ARGV[3]` deadline ms, `ARGV[4]` time to live ms. Returns 1 if bound.
pub const BIND: &str = r"
if redis.call('HSETNX', KEYS[1], 'u', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'x', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Settles a transaction if it is still remembered: `ARGV[1]` the verdict, `ARGV[2]` the new
/// deadline ms, `ARGV[3]` its time to live ms. Returns 1 if settled, 0 if already forgotten.
pub const SETTLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'x', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Notes a lockout: `ARGV[1]` its time ms, `ARGV[2]` a unique member, `ARGV[3]` the window ms.
/// Drops the times before the window and returns the times left (ascending).
pub const NOTE_LOCKOUT: &str = r"
local at = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], at, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. tostring(at - tonumber(ARGV[3])))
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '+inf')
";

/// Takes a rate-limit token, GCRA: [`sls_core::gcra::gcra`] line for line. `KEYS[1]` the
/// user's limiter key, `ARGV[1]` now µs, `ARGV[2]` the interval µs, `ARGV[3]` the tolerance
/// µs. Returns 0 if the request passes (the TAT moved), else the wait in µs (nothing written).
/// Times are about 1.8e15 µs: exact in Lua's doubles, and written with `%d` (a plain
/// `tostring` would print 14 significant digits).
///
/// The key is kept until its TAT and one second more: the TAT is in the caller's clock, the
/// expiry in Redis's, and keeping a TAT past its time changes no decision (a TAT in the past
/// decides as none), while losing it early would give tokens away.
pub const TAKE_USER_TOKEN: &str = r"
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
local earliest = tat - tonumber(ARGV[3])
if now < earliest then return earliest - now end
local new = math.max(tat, now) + tonumber(ARGV[2])
local ttl = math.ceil((new - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', string.format('%d', ttl))
return 0
";
