//! The release `run` handlers start their processes in, when berth deploys the
//! application: set at each switch; a process keeps the directory it started in, and
//! counts as using it until it ends (so that its directory is not removed under it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The live release's directory, shared by the handlers and the deployer.
#[derive(Debug, Clone, Default)]
pub struct ReleaseDir {
    current: Arc<Mutex<Option<PathBuf>>>,
    in_use: Arc<Mutex<HashMap<PathBuf, usize>>>,
}

/// A process's hold on the release it started in; dropped when it ends.
#[derive(Debug)]
pub struct InUse {
    dir: ReleaseDir,
    path: PathBuf,
}

impl ReleaseDir {
    /// Processes started from now on start in `path`.
    pub fn set(&self, path: Option<PathBuf>) {
        *self.current.lock().expect("not poisoned") = path;
    }

    /// The live release's directory.
    pub fn get(&self) -> Option<PathBuf> {
        self.current.lock().expect("not poisoned").clone()
    }

    /// The live release's directory, held until the returned guard drops.
    pub fn enter(&self) -> Option<(PathBuf, InUse)> {
        let path = self.get()?;
        *self
            .in_use
            .lock()
            .expect("not poisoned")
            .entry(path.clone())
            .or_default() += 1;
        Some((
            path.clone(),
            InUse {
                dir: self.clone(),
                path,
            },
        ))
    }

    /// Whether a process started in `path` still runs.
    pub fn in_use(&self, path: &Path) -> bool {
        self.in_use
            .lock()
            .expect("not poisoned")
            .get(path)
            .is_some_and(|n| *n > 0)
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut map = self.dir.in_use.lock().expect("not poisoned");
        if let Some(n) = map.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_holds_the_release_it_started_in() {
        let dir = ReleaseDir::default();
        assert!(dir.enter().is_none());
        dir.set(Some("/r/1".into()));
        let (p, held) = dir.enter().unwrap();
        assert_eq!(p, Path::new("/r/1"));
        dir.set(Some("/r/2".into()));
        assert!(dir.in_use(Path::new("/r/1")));
        assert!(!dir.in_use(Path::new("/r/2")));
        drop(held);
        assert!(!dir.in_use(Path::new("/r/1")));
    }
}
