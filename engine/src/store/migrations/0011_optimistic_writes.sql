-- Optimistic result transitions (store/transition.ts): the engine reads executions without a
-- lock, decides, and writes everything in ONE statement that also checks each execution row
-- is still the version it read (xmin). When one changed meanwhile, this raises
-- serialization_failure, the whole statement rolls back, and the engine decides again.
CREATE FUNCTION fm_check_versions(expected integer, actual bigint) RETURNS integer
  LANGUAGE plpgsql AS $$
BEGIN
  IF expected >= 0 AND actual <> expected THEN
    RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'fm: an execution changed while its transition was decided';
  END IF;
  RETURN actual;
END
$$;
