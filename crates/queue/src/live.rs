//! [`Live`]: a value that a reload replaces whole while berth runs.

use std::sync::{Arc, RwLock};

/// A value shared by every clone that a reload replaces whole: readers take the current
/// one ([`Live::get`], an `Arc`) and keep it for as long as they need, untouched by a
/// later [`Live::set`]. The lock is held only to copy the `Arc`, never across an await.
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Live<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The value as it stands.
    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value for every later [`Live::get`].
    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}
