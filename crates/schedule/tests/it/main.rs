//! Schedule tests over a real store (SQLite, and PostgreSQL for the two-node case) with a
//! manual clock: passes are driven by hand, nothing sleeps.

mod firing;
