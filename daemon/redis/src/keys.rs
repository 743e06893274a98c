//! The key layout and the Lua scripts. Every key holds the store's prefix and is a hash tag as
//! a whole (`{prefix:kind:id}`), so each sits in a slot of its own, but for a transaction's:
//! its id carries its user's slot in its top 14 bits and its key's tag is a short string that
//! hashes to that slot, so that the compare-and-set of the user writes it in the same script.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{P:u:<user>}` | hash | `v` its writes so far (1, 2, …), `s` the encoded [`UserState`](sls_engine::UserState), sealed, `w` the id of the write that set them (the compare-and-set's condition), `p` the ids of the two writes before (a re-sent write is recognised) |
//! | `{P:u:<user>}r` | string | the user's rate-limit TAT in µs (GCRA, [`sls_core::gcra`]); `PX` until it (+1 s); kept for unknown users too |
//! | `{P:u:<user>}f` | string | a marker an awaiting node writes in the user's slot before it reports a push's decision: once it is on the replicas, so is the decision (`PX` 1 s) |
//! | `{<tag>}P:t:<txn hex>` | hash | `u` user, `d` device, `x` deadline ms, `r` verdict once spent; `PX` until the deadline |
//! | `{P:s:<id>}` | hash | `v` version, `s` the encoded [`Share`](sls_engine::Share), sealed, `w` as above; after a delete `v` and `w` stay (a tombstone) |
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

/// Redis Cluster's slot of `key`: CRC16/XMODEM of its hash tag (between the first `{` and
/// the next `}`, when not empty), else of the whole key, modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % 16384
}

/// A short hash tag that hashes to `slot` (the smallest decimal number that does), found once
/// for all 16,384 slots.
fn slot_tag(wanted: u16) -> &'static str {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); 16384];
        let mut left = tags.len();
        let mut n: u64 = 0;
        while left > 0 {
            let t = n.to_string();
            let s = usize::from(slot(t.as_bytes()));
            if tags[s].is_empty() {
                tags[s] = t;
                left -= 1;
            }
            n += 1;
        }
        tags
    });
    &tags[usize::from(wanted) % tags.len()]
}

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

    /// A transaction's key: in the slot its id carries in its top bits (its user's, see
    /// [`sls_engine::Store::txn_slot`]), through a hash tag that hashes there.
    pub fn txn(&self, txn: TxnId) -> Vec<u8> {
        let shift = 128 - sls_core::cx::TXN_SLOT_BITS;
        let slot = u16::try_from(txn.0 >> shift).unwrap_or(0);
        format!("{{{}}}{}:t:{:032x}", slot_tag(slot), self.prefix, txn.0).into_bytes()
    }

    /// The slot of `user`'s key (the one its transaction ids carry).
    pub fn user_slot(&self, name: &str) -> u16 {
        slot(&self.user(name))
    }

    /// A user's audit trail: a list in the user's slot, outside the user's hash.
    pub fn audit(&self, name: &str) -> Vec<u8> {
        let mut k = self.user(name);
        k.push(b'a');
        k
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

    /// The key a `WAIT` round writes on the master of `slot` before its `WAIT` (a few bytes
    /// that expire; see `durable.rs`).
    pub fn round_mark(&self, slot: u16) -> Vec<u8> {
        format!("{{{}}}{}:mark", slot_tag(slot), self.prefix).into_bytes()
    }

    pub fn seal_check(&self) -> Vec<u8> {
        self.key("seal", b"")
    }

    pub fn bus(&self) -> Vec<u8> {
        self.key("bus", b"")
    }
}

/// The Lua of one GCRA step ([`sls_core::gcra::gcra`] line for line), shared by the scripts
/// that take a rate-limit token: `take_token(key, now, interval, tolerance)` (numbers, µs) on
/// the user's limiter key returns 0 if the request passes (the TAT moved), else the wait in µs
/// (nothing written). Times are about 1.8e15 µs: exact in Lua's doubles, and written with `%d`
/// (a plain `tostring` would print 14 significant digits).
///
/// The key is kept until its TAT and one second more: the TAT is in the caller's clock, the
/// expiry in Redis's, and keeping a TAT past its time changes no decision (a TAT in the past
/// decides as none), while losing it early would give tokens away.
macro_rules! take_token_lua {
    () => {
        r"
local function take_token(key, now, interval, tolerance)
  local tat = tonumber(redis.call('GET', key) or now)
  local earliest = tat - tolerance
  if now < earliest then return earliest - now end
  local new = math.max(tat, now) + interval
  local ttl = math.ceil((new - now) / 1000) + 1000
  redis.call('SET', key, string.format('%d', new), 'PX', string.format('%d', ttl))
  return 0
end
"
    };
}

/// Compare-and-set of a versioned value (a user's state, a share): `KEYS[1]` the hash,
/// `ARGV[1]` the id of the write the caller's value came from (its `w`; `0`: never written),
/// `ARGV[2]` the new value (empty: delete), `ARGV[3]` this write's id (unique per store).
/// Returns `{count, indexed}`: the new count, and 0 if the transaction's entry below was not
/// written (a BIND of an id already bound, a SETTLE of an entry already expired; `{count}`
/// alone for a re-send whose first send applied, below); or, if
/// another write came in between, `{-1, {v, s, w}}`: the value as it is now, so that the caller
/// runs its rule again on it without a read of its own; or `{-2, {v, s, w}}`: this very write
/// was applied by an earlier send and others came after it (below).
///
/// **A rate-limit token** in the same round trip: with `ARGV[4..6]` (now µs, interval µs,
/// tolerance µs, as [`TAKE_USER_TOKEN`]'s; `ARGV[4]` empty or absent: none) and `KEYS[2]` the user's
/// limiter key, the script takes the token once the condition holds and before it writes; if
/// none is left it writes nothing and returns `{-3, wait µs}`. A conflict takes no token (the
/// caller's next try carries it again), nor does a re-send that had applied (its first send
/// took it).
///
/// With one more key (`KEYS[3]` with a token, else `KEYS[2]`), the transaction index's entry in
/// the same slot, written with the value (one script, one round trip): `ARGV[7]` `b` binds it
/// (`ARGV[8]` user, `ARGV[9]` device, `ARGV[10]` deadline ms, `ARGV[11]` time to live ms, as
/// [`BIND`]), `s` settles it (`ARGV[8]` verdict, `ARGV[9]` deadline ms, `ARGV[10]` time to
/// live ms, as [`SETTLE`]).
///
/// **Idempotent**: the client re-sends a script whose reply timed out. If that first send did
/// apply, `w` holds this write's id, or `p` does (the ids of the two writes before `w`, most
/// recent first) when others came after it; the script then answers success, or `-2`, instead
/// of a conflict, which would run the rule again on a value that holds this write (a failure
/// counted twice, R11). Three writes of the user by other nodes between a send and its re-send
/// would take the id out of `p`: the re-send is then refused as stale.
/// **Where it ran**: a write answers with the id of the node that ran it (`CLUSTER MYID`), so
/// that only that node's `WAIT` can acknowledge it (`durable.rs`): after a failover, a master
/// that came back and has not yet learnt it is one no longer takes a write the new master's
/// `WAIT` must not vouch for.
/// **No ABA**: the condition is the write's id, not the count: after a failover that lost the
/// last writes the count comes back, and another node's next write would match it; an id is
/// never written twice. A delete leaves a tombstone (`v` and `w`, no `s`).
pub const CAS: &str = concat!(
    take_token_lua!(),
    r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'w', 'p')
local me = redis.pcall('CLUSTER', 'MYID')
if type(me) ~= 'string' then me = '' end
if (cur[2] or '0') ~= ARGV[1] then
  if cur[2] == ARGV[3] then return {tonumber(cur[1]), 0, me} end
  local now = redis.call('HMGET', KEYS[1], 'v', 's', 'w')
  if cur[3] and string.find(' ' .. cur[3] .. ' ', ' ' .. ARGV[3] .. ' ', 1, true) then
    return {-2, now}
  end
  return {-1, now}
end
local limited = (ARGV[4] or '') ~= ''
if limited then
  local wait = take_token(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
  if wait > 0 then return {-3, wait} end
end
local entry = KEYS[limited and 3 or 2]
local nv = tonumber(cur[1] or '0') + 1
local p = ''
if cur[2] then
  p = cur[2]
  local last = cur[3] and string.match(cur[3], '^%S+')
  if last then p = p .. ' ' .. last end
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 's')
  redis.call('HSET', KEYS[1], 'v', nv, 'w', ARGV[3], 'p', p)
else
  redis.call('HSET', KEYS[1], 'v', nv, 's', ARGV[2], 'w', ARGV[3], 'p', p)
end
local indexed = 1
if entry then
  if ARGV[7] == 'b' then
    indexed = redis.call('HSETNX', entry, 'u', ARGV[8])
    if indexed == 1 then
      redis.call('HSET', entry, 'd', ARGV[9], 'x', ARGV[10])
      redis.call('PEXPIRE', entry, ARGV[11])
    end
  elseif ARGV[7] == 's' then
    indexed = redis.call('EXISTS', entry)
    if indexed == 1 then
      redis.call('HSET', entry, 'r', ARGV[8], 'x', ARGV[9])
      redis.call('PEXPIRE', entry, ARGV[10])
    end
  end
end
return {nv, indexed, me}
"
);

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

/// Reads a transaction and, in the same round trip, its user: `KEYS[1]` the transaction's
/// key, `ARGV[1]` the user key's text before the name, `ARGV[2]` after it. Returns
/// `{{u, d, x, r}}`, then `{v, s, w}` of the user's key and that key, when the transaction names
/// a user whose key is in its slot (an id made for its user is; another is read apart: a key
/// of another slot must not be touched here).
pub const TXN_AND_USER: &str = r"
local t = redis.call('HMGET', KEYS[1], 'u', 'd', 'x', 'r')
if not t[1] then return {t} end
local uk = ARGV[1] .. t[1] .. ARGV[2]
if redis.call('CLUSTER', 'KEYSLOT', uk) ~= redis.call('CLUSTER', 'KEYSLOT', KEYS[1]) then
  return {t}
end
return {t, redis.call('HMGET', uk, 'v', 's', 'w'), uk}
";

/// Notes a lockout: `ARGV[1]` its time ms, `ARGV[2]` a unique member, `ARGV[3]` the window ms.
/// Drops the times before the window and returns the times left (ascending).
pub const NOTE_LOCKOUT: &str = r"
local at = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], at, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. tostring(at - tonumber(ARGV[3])))
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '+inf')
";

/// Takes a rate-limit token alone (one GCRA step, `take_token`): `KEYS[1]` the user's limiter key,
/// `ARGV[1]` now µs, `ARGV[2]` the interval µs, `ARGV[3]` the tolerance µs. Returns 0 or the
/// wait in µs. For the one update that ends with no read or write of its own to carry it.
pub const TAKE_USER_TOKEN: &str = concat!(
    take_token_lua!(),
    r"
return take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
"
);

/// Reads a versioned value and takes its user's rate-limit token in the same round trip:
/// `KEYS[1]` the user's hash, `KEYS[2]` their limiter key, `ARGV` as [`TAKE_USER_TOKEN`]'s.
/// Returns `{0, {v, s, w}}`, or `{wait µs}` with nothing read.
pub const READ_LIMITED: &str = concat!(
    take_token_lua!(),
    r"
local wait = take_token(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if wait > 0 then return {wait} end
return {0, redis.call('HMGET', KEYS[1], 'v', 's', 'w')}
"
);
