-- Version 2: invoices get a due date, 30 days after they are issued.
ALTER TABLE invoices ADD COLUMN due_date TEXT;
UPDATE invoices SET due_date = date(issued_at, '+30 days');
CREATE TRIGGER invoices_due_date AFTER INSERT ON invoices WHEN NEW.due_date IS NULL
BEGIN
    UPDATE invoices SET due_date = date(NEW.issued_at, '+30 days') WHERE id = NEW.id;
END;
