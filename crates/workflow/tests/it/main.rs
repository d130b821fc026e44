//! Workflow tests: real executors and `run` handlers over a real SQLite store, time from
//! a manual clock.

mod runs;
