//! Horizontal sharding, the pure part: which shard an account belongs to, the Lease that owns
//! each shard, and how many shards a replica should hold.
//!
//! Accounts are divided over `count` shards by a stable hash of the account's name (64-bit
//! FNV-1a, the hash Kubernetes' server-side sharded watch uses, reduced modulo the count). An
//! account's objects, its ErasureReceipts and its erasure requests all belong to the account's
//! shard, so every decision about an account is made by one shard, whose owner holds that
//! shard's Lease. With one shard (the default) the one Lease keeps its name, so a replica that
//! does not shard and an older release contend for the same Lease.

use std::fmt;

/// One shard of a sharded operator, or the whole of an unsharded one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    /// Its index, below `count`.
    pub index: u32,
    /// How many shards there are (at least 1).
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-of-{}", self.index, self.count)
    }
}

/// The 64-bit FNV-1a hash of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

impl Shard {
    /// The only shard of an operator that does not shard.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// Every shard of `count` (at least one).
    pub fn all(count: u32) -> impl Iterator<Item = Self> {
        let count = count.max(1);
        (0..count).map(move |index| Self { index, count })
    }

    /// The shard of `count` the named account belongs to.
    pub fn of(account: &str, count: u32) -> Self {
        let count = count.max(1);
        let index = u32::try_from(fnv1a(account.as_bytes()) % u64::from(count)).unwrap_or(0);
        Self { index, count }
    }

    /// Whether the named account belongs to this shard.
    pub fn owns(&self, account: &str) -> bool {
        self.count <= 1 || Self::of(account, self.count) == *self
    }

    /// Whether something that names no account (a malformed object without a readable
    /// accountRef) belongs here: to the first shard.
    pub fn owns_the_unnamed(&self) -> bool {
        self.index == 0
    }

    /// Whether something claiming `account` (or no readable account) belongs here.
    pub fn owns_claim(&self, account: Option<&str>) -> bool {
        account.map_or_else(|| self.owns_the_unnamed(), |a| self.owns(a))
    }

    /// The name of the Lease that owns this shard: `base` itself when there is one shard,
    /// else `base-<index>-of-<count>`, so that replicas started with different counts never
    /// hold overlapping shards under one name.
    pub fn lease_name(&self, base: &str) -> String {
        if self.count <= 1 {
            base.to_owned()
        } else {
            format!("{base}-{self}")
        }
    }
}

/// How many of `count` shards one of `replicas` live replicas should hold: the fair share,
/// rounded up so that every shard has an owner.
pub fn fair_share(count: u32, replicas: u32) -> u32 {
    count.max(1).div_ceil(replicas.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_hash_is_64_bit_fnv1a() {
        // Published test vectors of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_account_has_exactly_one_shard_and_the_shards_are_even() {
        let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
        for i in 0..10_000 {
            let account = format!("customer-{i}");
            let owners: Vec<Shard> = Shard::all(4).filter(|s| s.owns(&account)).collect();
            assert_eq!(owners.len(), 1, "{account}: {owners:?}");
            assert_eq!(owners[0], Shard::of(&account, 4));
            *sizes.entry(owners[0].index).or_default() += 1;
        }
        assert_eq!(sizes.len(), 4);
        for (shard, size) in sizes {
            assert!((2_300..=2_700).contains(&size), "shard {shard}: {size}");
        }
    }

    #[test]
    fn one_shard_owns_everything_under_the_plain_lease_name() {
        assert!(Shard::WHOLE.owns("anything"));
        assert!(Shard::WHOLE.owns_claim(None));
        assert_eq!(
            Shard::WHOLE.lease_name("retention-operator"),
            "retention-operator"
        );
        assert_eq!(Shard::all(0).collect::<Vec<_>>(), [Shard::WHOLE]);
        let third = Shard { index: 2, count: 4 };
        assert_eq!(
            third.lease_name("retention-operator"),
            "retention-operator-2-of-4"
        );
        assert!(
            !third.owns_claim(None),
            "the unnamed belong to the first shard"
        );
        assert!(Shard { index: 0, count: 4 }.owns_claim(None));
    }

    #[test]
    fn the_fair_share_covers_every_shard() {
        assert_eq!(fair_share(4, 4), 1);
        assert_eq!(fair_share(4, 3), 2);
        assert_eq!(fair_share(4, 1), 4);
        assert_eq!(fair_share(4, 0), 4);
        assert_eq!(fair_share(4, 9), 1);
        for count in 1..20 {
            for replicas in 1..20 {
                assert!(fair_share(count, replicas) * replicas >= count);
            }
        }
    }
}
