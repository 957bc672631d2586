-- An attempt's row is inserted when it is dispatched and updated once with its outcome, on a
-- table with room for that update on the same page (fillfactor 80). The index on completed_at
-- (0004, for usage by period) made every one of those updates non-HOT: each set completed_at,
-- so each wrote a new entry into all three of the table's indexes — measured over a 100,000-flow
-- soak: 281,818 outcome updates, 0 HOT. Usage reads the whole retention-bounded table for its
-- default 30-day period anyway; it now does so without an index, and outcomes cost no index
-- writes when they fit on their page.
DROP INDEX IF EXISTS tasks_completed;
