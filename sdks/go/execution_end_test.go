package flowmonkey

import (
	"testing"
	"time"
)

func TestRunStopsStopOnlyAttemptsDispatchedBeforeTheEnd(t *testing.T) {
	var stops runStops
	endedAt := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	before, after, other := &Task{ExecutionID: "e1"}, &Task{ExecutionID: "e1"}, &Task{ExecutionID: "e2"}
	before.Metadata.DispatchedAt = endedAt.Add(-time.Second)
	after.Metadata.DispatchedAt = endedAt.Add(time.Second) // a retried step's new attempt
	stopBefore, releaseBefore := stops.track(before)
	stopAfter, releaseAfter := stops.track(after)
	stopOther, releaseOther := stops.track(other)
	defer releaseBefore()
	defer releaseAfter()
	defer releaseOther()
	if n := stops.ended("e1", "cancelled", endedAt); n != 1 {
		t.Fatalf("stopped %d runs, want 1", n)
	}
	select {
	case reason := <-stopBefore:
		if reason != "execution e1 was cancelled while this step ran" {
			t.Fatalf("reason %q", reason)
		}
	default:
		t.Fatal("the attempt dispatched before the end was not stopped")
	}
	select {
	case <-stopAfter:
		t.Fatal("an attempt dispatched after the end was stopped")
	case <-stopOther:
		t.Fatal("another execution's run was stopped")
	default:
	}
}
