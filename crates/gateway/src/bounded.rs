//! Per-client state with a hard cap, and the key a client address is counted under.
//!
//! The gateway keeps small per-key records (rate-limit buckets, failed logins, cached
//! session and token lookups) for keys a client chooses: its address, the token it sends.
//! A client that rotates them (IPv6 gives one machine 2^64 addresses) must not grow them
//! without end, nor make each request scan them. [`Bounded`] holds at most `cap` entries
//! in two generations: entries land in the young one, an entry found in the old one
//! moves back to the young one, and when the young one is full the old one is dropped
//! and the young one becomes old. What goes is what has not been used for the longest
//! (at least `cap / 2` keys ago), in O(1) per call, without a scan.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// A map of at most `cap` entries that forgets the least recently used half when full.
#[derive(Debug)]
pub(crate) struct Bounded<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    /// The young generation's size when it turns old.
    half: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// Holds at most `cap` entries (at least 2).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (cap / 2).max(1),
        }
    }

    /// How many entries are held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// The entry for `key`, if held; using it keeps it.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if !self.young.contains_key(key) {
            let value = self.old.remove(key)?;
            self.make_room();
            self.young.insert(key.clone(), value);
        }
        self.young.get_mut(key)
    }

    /// The entry for `key`, made with `make` if not held.
    pub(crate) fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        if self.get_mut(key).is_none() {
            self.make_room();
            self.young.insert(key.clone(), make());
        }
        self.young
            .get_mut(key)
            .expect("the entry was just found or inserted")
    }

    /// Sets the entry for `key`.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.old.remove(&key).is_none() && !self.young.contains_key(&key) {
            self.make_room();
        }
        self.young.insert(key, value);
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    /// Before a new key enters the young generation: if it is full, the old one goes.
    fn make_room(&mut self) {
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
    }
}

/// The key a client address is counted under for rate limits and failed logins: an
/// IPv4 address as it is, an IPv6 address by its /64 network (what one site or one
/// machine is given, so rotating within it changes nothing), an IPv4-mapped IPv6
/// address as the IPv4 address it maps.
pub(crate) fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

/// How many connections the gateway's listeners hold open at once: in all, and per
/// client ([`client_key`]). A connection past either is closed as soon as it is
/// accepted, before anything is read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections in all (at least 1).
    pub total: usize,
    /// Open connections per client address (an IPv6 client by its /64); 0: no limit.
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            total: 16_384,
            per_address: 512,
        }
    }
}

/// The open connections, counted against [`ConnectionLimits`].
#[derive(Debug)]
pub(crate) struct Connections {
    limits: ConnectionLimits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection: it counts until dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    connections: Arc<Connections>,
    key: IpAddr,
}

impl Connections {
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Counts a new connection from `peer`, or `Err(why)` when a limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, &'static str> {
        let key = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= self.limits.total.max(1) {
            return Err("the gateway's connection limit");
        }
        let mine = open.1.get(&key).copied().unwrap_or(0);
        if self.limits.per_address > 0 && mine >= self.limits.per_address {
            return Err("the limit per client address");
        }
        open.0 += 1;
        open.1.insert(key, mine + 1);
        Ok(Admitted {
            connections: self.clone(),
            key,
        })
    }

    /// Connections open now: in all, and from `peer`'s client key.
    #[cfg(test)]
    pub(crate) fn open(&self, peer: IpAddr) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        (open.0, open.1.get(&client_key(peer)).copied().unwrap_or(0))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_keys_never_hold_more_than_the_cap() {
        let mut map = Bounded::new(1000);
        let mut most = 0;
        for k in 0..1_000_000u32 {
            *map.get_or_insert_with(&k, || 0u32) += 1;
            most = most.max(map.len());
        }
        assert!(most <= 1000, "held {most}");
        assert!(
            map.len() >= 500,
            "a full map keeps at least half: {}",
            map.len()
        );
    }

    #[test]
    fn a_key_in_use_survives_a_flood_of_new_ones() {
        let mut map = Bounded::new(100);
        map.insert("regular".to_owned(), 1);
        for k in 0..10_000 {
            map.insert(format!("flood-{k}"), 0);
            // The regular client comes back every 40 new keys (less than cap / 2).
            if k % 40 == 0 {
                *map.get_mut(&"regular".to_owned()).expect("kept while used") += 1;
            }
        }
        assert_eq!(map.get_mut(&"regular".to_owned()), Some(&mut 251));
        // Not used for long enough, it goes.
        for k in 0..200 {
            map.insert(format!("later-{k}"), 0);
        }
        assert_eq!(map.get_mut(&"regular".to_owned()), None);
    }

    #[test]
    fn connections_count_in_all_and_per_client_until_dropped() {
        let c = Connections::new(ConnectionLimits {
            total: 5,
            per_address: 3,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b2: IpAddr = "2001:db8::2".parse().unwrap();
        let mut held: Vec<Admitted> = (0..3).map(|_| c.admit(a).unwrap()).collect();
        assert_eq!(c.admit(a).unwrap_err(), "the limit per client address");
        held.push(c.admit(b).unwrap());
        held.push(c.admit(b2).unwrap());
        assert_eq!(c.open(b), (5, 2), "one /64, one client");
        assert_eq!(
            c.admit("192.0.2.9".parse().unwrap()).unwrap_err(),
            "the gateway's connection limit"
        );
        held.remove(0);
        assert_eq!(c.open(a), (4, 2));
        held.push(c.admit(a).unwrap());
        drop(held);
        assert_eq!(c.open(a), (0, 0));
        assert!(
            c.open.lock().unwrap().1.is_empty(),
            "nothing kept for closed clients"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(client_key(a), client_key(other));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
    }
}
