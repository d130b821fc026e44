//! One deploy at a time, across every node of the app: a setting in the store, claimed
//! and released by compare-and-swap, renewed while the deploy runs. A lock whose holder
//! stopped renewing (its berth died) expires; the holder's own node releases it at its
//! next start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_store::{SettingStore, Timestamp};
use serde_json::{Value, json};

use crate::DeployError;

/// The setting that holds the deploy lock.
pub const LOCK_KEY: &str = "deploy.lock";
/// The setting that says which commit's migration ran last (a node deploying the same
/// commit after another does not run it again).
pub const MIGRATED_KEY: &str = "deploy.migrated";

/// How long a claim lasts without renewal.
const TTL: Duration = Duration::from_secs(60);
/// How often a held lock is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// A held lock, renewed until released.
pub(crate) struct Held {
    store: Arc<dyn SettingStore>,
    value: Arc<Mutex<Value>>,
    renew: tokio::task::JoinHandle<()>,
    /// Set when a renewal found the lock taken by another deploy.
    lost: Arc<AtomicBool>,
}

fn value(node: &str, release: &str, since: Timestamp, now: Timestamp) -> Value {
    json!({
        "node": node,
        "pid": std::process::id(),
        "release": release,
        "since": since,
        "until": now.plus(TTL),
    })
}

/// Takes the lock for `release`, or says who holds it.
pub(crate) async fn claim(
    store: Arc<dyn SettingStore>,
    node: &str,
    release: &str,
) -> Result<Held, DeployError> {
    let now = Timestamp::now();
    let mine = value(node, release, now, now);
    let held = store.setting(LOCK_KEY).await?;
    let expected = match held {
        None => None,
        Some(v) => {
            let until = v["until"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .unwrap_or(Timestamp(0));
            if until > now {
                return Err(DeployError::Busy(busy(&v, now)));
            }
            tracing::warn!(lock = %v, "taking over a deploy lock its holder stopped renewing");
            Some(v)
        }
    };
    if !store
        .swap_setting(LOCK_KEY, expected, Some(mine.clone()), now)
        .await?
    {
        let v = store.setting(LOCK_KEY).await?.unwrap_or(Value::Null);
        return Err(DeployError::Busy(busy(&v, now)));
    }
    let value = Arc::new(Mutex::new(mine));
    let lost = Arc::new(AtomicBool::new(false));
    let renew = {
        let (store, value, node, release, lost) = (
            store.clone(),
            value.clone(),
            node.to_owned(),
            release.to_owned(),
            lost.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let old = value.lock().expect("not poisoned").clone();
                let since = old["since"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(Timestamp::now);
                let now = Timestamp::now();
                let new = self::value(&node, &release, since, now);
                match store
                    .swap_setting(LOCK_KEY, Some(old), Some(new.clone()), now)
                    .await
                {
                    Ok(true) => *value.lock().expect("not poisoned") = new,
                    Ok(false) => {
                        tracing::error!("the deploy lock was taken by another deploy");
                        lost.store(true, Ordering::Release);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the deploy lock"),
                }
            }
        })
    };
    Ok(Held {
        store,
        value,
        renew,
        lost,
    })
}

fn busy(v: &Value, now: Timestamp) -> String {
    let since = v["since"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok());
    format!(
        "a deploy is running: release {} on node {}{}; wait for it to end (`berth releases` shows it)",
        v["release"].as_str().unwrap_or("?"),
        v["node"].as_str().unwrap_or("?"),
        since
            .map(|s| format!(", for {}", crate::humanize(now.since(s))))
            .unwrap_or_default()
    )
}

impl Drop for Held {
    /// A lock dropped without [`Held::release`] (an error path, a cancelled request) is
    /// no longer renewed: it expires within a minute instead of being held forever.
    fn drop(&mut self) {
        self.renew.abort();
    }
}

impl Held {
    /// Whether the lock is still this deploy's: `Err` says what happened when another
    /// deploy took it (its holder's clock ran a minute ahead, say).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.lost.load(Ordering::Acquire) {
            Err("another deploy took the deploy lock while this one ran (do the nodes' clocks agree?); stopped before changing more".into())
        } else {
            Ok(())
        }
    }

    /// Releases the lock.
    pub(crate) async fn release(mut self) {
        self.renew.abort();
        // A renewal in flight ends first, so that the value swapped out is the latest.
        let _ = (&mut self.renew).await;
        let v = self.value.lock().expect("not poisoned").clone();
        if let Err(e) = self
            .store
            .swap_setting(LOCK_KEY, Some(v), None, Timestamp::now())
            .await
        {
            tracing::warn!(error = %e, "cannot release the deploy lock; it expires within a minute");
        }
    }
}

/// Releases a lock this node's previous run left (it died mid-deploy): returns the
/// release it named.
pub(crate) async fn release_own(store: &dyn SettingStore, node: &str) -> Option<String> {
    let v = store.setting(LOCK_KEY).await.ok()??;
    if v["node"].as_str() != Some(node) {
        return None;
    }
    let release = v["release"].as_str().map(str::to_owned);
    store
        .swap_setting(LOCK_KEY, Some(v), None, Timestamp::now())
        .await
        .ok()?
        .then_some(())?;
    release
}
