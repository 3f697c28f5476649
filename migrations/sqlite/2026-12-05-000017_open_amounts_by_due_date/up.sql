-- A client's open invoices, summed by due date, kept on its row with the other figures its
-- events make (`domain::ledger::Ledger::open_dues`): what reviews, decisions and client reads
-- need of its invoices (what is overdue, since when, the days its invoices cross 30, 60 or 90
-- days past due). Each of them used to read every open invoice of the client through
-- `invoices_open_by_due`; a review read hundreds for a client with many small invoices. The
-- event writer changes the sums with the invoices and writes them with the client's row;
-- `encours clients rebuild` replays them with the rest.
--
-- The text is a JSON array of ["YYYY-MM-DD", open amount in minor units, invoices], one a
-- due date, earliest first.
ALTER TABLE clients ADD COLUMN open_dues TEXT NOT NULL DEFAULT '[]';

UPDATE clients SET open_dues = (
    SELECT json_group_array(json_array(due_on, open_minor, invoices))
    FROM (
        SELECT due_on, SUM(open_minor) AS open_minor, COUNT(*) AS invoices
        FROM invoices
        WHERE invoices.client_id = clients.client_id AND open_minor > 0 AND due_on IS NOT NULL
        GROUP BY due_on
        ORDER BY due_on
    )
)
WHERE client_id IN (SELECT client_id FROM invoices WHERE open_minor > 0);

DROP INDEX invoices_open_by_due;
