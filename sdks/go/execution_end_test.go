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

func TestAttemptsHoldACopyOfARunningAttempt(t *testing.T) {
	var a attempts
	first, copy := heldCopy{beating: make(chan struct{})}, heldCopy{beating: make(chan struct{})}
	if !a.begin("e/s:1", first) {
		t.Fatal("the first delivery must run")
	}
	if a.begin("e/s:1", copy) {
		t.Fatal("a copy delivered while the attempt runs here must not run twice")
	}
	if !a.begin("e/s:2", first) {
		t.Fatal("another attempt of the step is another task")
	}
	if held := a.finish("e/s:1"); len(held) != 1 || held[0].beating != copy.beating {
		t.Fatalf("held %v, want the one copy", held)
	}
	if !a.begin("e/s:1", first) {
		t.Fatal("once ended, a later delivery runs again")
	}
}
