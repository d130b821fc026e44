-- The first schema: imported activity rows, the import log, and the nightly summary.
CREATE TABLE activity (
    id INTEGER PRIMARY KEY,
    course TEXT NOT NULL,
    student TEXT NOT NULL,
    resource TEXT NOT NULL,
    action TEXT NOT NULL,
    at TEXT NOT NULL,
    import_id INTEGER NOT NULL
);
CREATE TABLE imports (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    rows INTEGER NOT NULL,
    imported_at TEXT NOT NULL,
    release TEXT NOT NULL
);
CREATE TABLE course_summary (
    course TEXT PRIMARY KEY,
    students INTEGER NOT NULL,
    actions INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
