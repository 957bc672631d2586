-- Crash-safe event catch-up.
--
-- A wait for an event is caught up on the events that came while its step ran (before the
-- wait row existed, so the live consumer matched them against nothing) by the engine that
-- committed it, right after the commit. Whether that happened is recorded here, so that an
-- engine that died first (or whose catch-up failed) leaves work that any replica's wait timer
-- finds and does: the sweep takes event waits still not caught up some seconds after they
-- were recorded, claims them, runs the same catch-up and marks them.
--
-- caught_up_at         NULL: an event wait whose catch-up has not completed yet; set when one
--                      completes (whether or not it resumed anything), and at insert for waits
--                      without an event (they need none).
-- catch_up_tries       how often the sweep has claimed it: its next claim backs off (doubling
--                      from the grace period, capped), so a catch-up that keeps failing is
--                      retried at a bounded rate, never in a hot loop.
-- catch_up_not_before  the sweep's claim: no replica takes it again before this (a claim is
--                      also the lease of a catch-up in progress).
ALTER TABLE wait_tokens
  ADD COLUMN caught_up_at        timestamptz,
  ADD COLUMN catch_up_tries      integer NOT NULL DEFAULT 0,
  ADD COLUMN catch_up_not_before timestamptz;

-- Waits recorded before this migration predate the record: the engine that parked them ran
-- their catch-up already (or they predate the catch-up itself). Sweeping them all now could
-- read days of FM_EVENTS at once; they count as done.
UPDATE wait_tokens SET caught_up_at = now();

-- Only the rows the sweep looks for: in steady state, the waits of the last few seconds.
CREATE INDEX wait_tokens_catch_up ON wait_tokens (created_at)
  WHERE caught_up_at IS NULL AND event_name IS NOT NULL;
