-- Facts a write checks instead of the engine reading them first (store/write-changes.ts).
--
-- Optimistic result batches (store/transition.ts) may decide without reading the regions their
-- attempts were sent to: the write then checks, in the same statement, that each applied
-- result's attempt is on record in the region the result came from. When one is not (a forged
-- or misrouted result), this raises, the whole statement rolls back, and the engine decides the
-- batch again with the regions read first (and rejects that result).
CREATE FUNCTION fm_check_attempt_regions(misses bigint) RETURNS integer
  LANGUAGE plpgsql AS $$
BEGIN
  IF misses > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'FMR01', MESSAGE = 'fm: a result''s region does not match its attempt''s';
  END IF;
  RETURN 0;
END
$$;

-- Starts may be decided on the flow version the engine last knew as the latest: the write
-- checks that it still is, else this raises and the starts are decided again on a fresh read.
CREATE FUNCTION fm_check_latest_flows(misses bigint) RETURNS integer
  LANGUAGE plpgsql AS $$
BEGIN
  IF misses > 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'FMF01', MESSAGE = 'fm: a flow has a newer version than the one a start was decided on';
  END IF;
  RETURN 0;
END
$$;
