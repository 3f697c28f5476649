-- A client's open invoices, summed by due date: what reviews, decisions and the scheduled
-- pass read of its invoices (what is overdue, since when, and the days its invoices will
-- cross 30, 60 or 90 days past due). Each used to read every open invoice of the client
-- through `invoices_open_by_due`; a client with many small invoices due on the same days
-- paid for each of them on every review. Kept by the event writer in the same transaction as
-- the invoices (`store::open_dues`), rebuilt with them (`encours clients rebuild`).
CREATE TABLE open_dues (
    client_id   TEXT NOT NULL REFERENCES clients (client_id),
    due_on      DATE NOT NULL,
    -- Σ open amount of the client's issued invoices due that day whose open amount is > 0.
    open_minor  BIGINT NOT NULL,
    -- How many they are; the row goes when it reaches 0.
    invoices    BIGINT NOT NULL,
    PRIMARY KEY (client_id, due_on)
);

INSERT INTO open_dues (client_id, due_on, open_minor, invoices)
SELECT client_id, due_on, SUM(open_minor), COUNT(*)
FROM invoices
WHERE open_minor > 0 AND due_on IS NOT NULL
GROUP BY client_id, due_on;

DROP INDEX invoices_open_by_due;
