//! berth-cron integration tests.

mod dst;
mod fuzz;
