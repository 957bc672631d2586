-- Every step inserted a task row whose foreign key to its execution PostgreSQL checked with a
-- row lock (SELECT ... FOR KEY SHARE through a trigger), and every start locked its flow
-- version's row the same way — one WAL record and one trigger query per row, and a shared
-- lock (a MultiXact) on a flow row that every concurrent start of that flow takes. The engine
-- writes a task only in the statement that writes its execution, and an execution only for a
-- flow version it read, so the checks never refused a write; retention deletes the tasks of the
-- executions it deletes itself (store/retention.ts).
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_execution_id_fkey;
ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_flow_id_flow_version_fkey;
