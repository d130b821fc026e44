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

    /// Takes a port for the new process of a rolling restart while the old one still
    /// holds its own: `preferred` when free (so an instance that moved to a spare moves
    /// back), else any port of the range that no process of the service holds and
    /// nothing else listens on. `None`: every port of the range is held.
    pub fn take_spare(&mut self, preferred: u16) -> Option<u16> {
        let port = std::iter::once(preferred)
            .chain(self.range.first..=self.range.last)
            .find(|p| {
                (self.range.first..=self.range.last).contains(p)
                    && !self.held.contains(p)
                    && bindable(*p)
            })?;
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
        // Instance 0's replacement: its own port is held, the spare is free.
        assert_eq!(pool.take_spare(61_000), Some(61_002));
        assert_eq!(pool.take_spare(61_001), None);
        // The old process of instance 0 is gone: its port is the next spare.
        pool.release(61_000);
        assert_eq!(pool.take_spare(61_002), Some(61_000));
        pool.release(61_002);
        assert_eq!(pool.take(61_001), Some(61_002));
        assert_eq!(pool.take(61_000), None);
    }
}
