//! The ports of one service, shared by its instances: each takes the port it prefers
//! when it can, and a rolling restart borrows a spare one for the new process.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::spec::Ports;

/// A service's port range and the ports its processes hold.
#[derive(Debug)]
pub(crate) struct PortPool {
    range: Ports,
    held: BTreeSet<u16>,
}

/// A pool shared by a service's instance tasks.
pub(crate) type SharedPorts = Arc<Mutex<PortPool>>;

impl PortPool {
    pub fn shared(range: Ports) -> SharedPorts {
        Arc::new(Mutex::new(Self {
            range,
            held: BTreeSet::new(),
        }))
    }

    /// Takes `preferred` if no process of the service holds it, else the first port of
    /// the range that none holds and nothing else listens on. `None`: the range is full.
    pub fn take(&mut self, preferred: u16) -> Option<u16> {
        let port = if self.held.contains(&preferred) {
            (self.range.first..=self.range.last).find(|p| !self.held.contains(p) && bindable(*p))?
        } else {
            preferred
        };
        self.held.insert(port);
        Some(port)
    }

    /// Takes a port other than the instances' preferred ones, for the new process of a
    /// rolling restart. `None`: the range has no free spare.
    pub fn take_spare(&mut self, instances: u32) -> Option<u16> {
        let spares = u32::from(self.range.first) + instances;
        let port = (spares..=u32::from(self.range.last))
            .filter_map(|p| u16::try_from(p).ok())
            .find(|p| !self.held.contains(p) && bindable(*p))?;
        self.held.insert(port);
        Some(port)
    }

    /// Gives `port` back once its process is gone.
    pub fn release(&mut self, port: u16) {
        self.held.remove(&port);
    }
}

/// Whether nothing listens on `port` right now.
fn bindable(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_then_spare_then_full() {
        // A range high enough that nothing else is likely to listen there.
        let pool = PortPool::shared(Ports {
            first: 61_000,
            last: 61_002,
        });
        let mut pool = pool.lock().unwrap();
        assert_eq!(pool.take(61_000), Some(61_000));
        assert_eq!(pool.take(61_001), Some(61_001));
        assert_eq!(pool.take_spare(2), Some(61_002));
        assert_eq!(pool.take_spare(2), None);
        pool.release(61_000);
        assert_eq!(pool.take(61_001), Some(61_000));
        assert_eq!(pool.take(61_000), None);
    }
}
