-- The first schema: insurance contracts and their monthly invoices.
CREATE TABLE contracts (
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    holder TEXT NOT NULL,
    email TEXT NOT NULL,
    product TEXT NOT NULL,
    monthly_premium_cents INTEGER,
    status TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE invoices (
    id INTEGER PRIMARY KEY,
    contract_id INTEGER NOT NULL REFERENCES contracts(id),
    period TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    issued_at TEXT NOT NULL,
    document TEXT NOT NULL,
    UNIQUE (contract_id, period)
);
