//! testkit integration tests: the fixtures themselves, against the real programs they
//! start.

mod pg;
