"""The nightly summary (what celery beat ran): per course, how many students were
active and how many actions they took. berth runs it from [schedule.nightly-summary];
`berth schedule run nightly-summary` runs it now."""

import lms


def main():
    db = lms.connect()
    with db:
        db.execute("DELETE FROM course_summary")
        db.execute(
            "INSERT INTO course_summary (course, students, actions, updated_at) "
            "SELECT course, COUNT(DISTINCT student), COUNT(*), datetime('now') FROM activity GROUP BY course"
        )
    n = db.execute("SELECT COUNT(*) FROM course_summary").fetchone()[0]
    print(f"summarized {n} courses")


if __name__ == "__main__":
    main()
