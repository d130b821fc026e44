//! berth-cron integration tests.

mod dst;
