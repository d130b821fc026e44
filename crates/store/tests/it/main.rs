//! Store tests: the conformance suite on SQLite, and what only SQLite has (the file).

mod conformance_sqlite {
    berth_store::conformance_suite!(async { berth_store::conformance::sqlite_subject() });
}
mod conformance_postgres {
    //! The same cases on PostgreSQL: each on a fresh database of a throwaway cluster that
    //! the test harness starts from the installed server binaries.
    berth_store::conformance_suite!(async {
        let url = berth_testkit::pg::shared().fresh_database();
        let store = berth_store::PostgresStore::open(&url, Default::default())
            .await
            .expect("open the PostgreSQL store");
        berth_store::conformance::Subject {
            store: Box::new(store),
            keep: Box::new(()),
        }
    });
}
mod postgres;
mod postgres_tls;
mod sqlite_file;
