-- ...but this one assumes one contract per customer, and some customers hold two:
-- it fails on the real data, after 003 has changed the database.
CREATE UNIQUE INDEX contracts_email ON contracts (email);
