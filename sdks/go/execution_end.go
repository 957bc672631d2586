package flowmonkey

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// runStops are the handlers running here, so that an execution that ends elsewhere (cancelled,
// or failed by another step) stops them and frees their slots instead of letting them run to a
// result the engine ignores. Only attempts dispatched before the end: a step retried after a
// failure runs a new attempt that this late news must not stop.
type runStops struct {
	mu   sync.Mutex
	runs map[*Task]chan string
}

// track returns the channel that says why the task's run must stop, and its release.
func (s *runStops) track(t *Task) (<-chan string, func()) {
	stop := make(chan string, 1)
	s.mu.Lock()
	if s.runs == nil {
		s.runs = map[*Task]chan string{}
	}
	s.runs[t] = stop
	s.mu.Unlock()
	return stop, func() {
		s.mu.Lock()
		delete(s.runs, t)
		s.mu.Unlock()
	}
}

// ended stops the runs of executionID dispatched at or before endedAt; it answers how many.
func (s *runStops) ended(executionID, how string, endedAt time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	stopped := 0
	for t, stop := range s.runs {
		if t.ExecutionID != executionID || t.Metadata.DispatchedAt.After(endedAt) {
			continue
		}
		select {
		case stop <- fmt.Sprintf("execution %s was %s while this step ran", executionID, how):
			stopped++
		default: // already told
		}
	}
	return stopped
}

// subscribeExecutionEnds listens to every execution's cancelled and failed events.
func (w *Worker) subscribeExecutionEnds() error {
	for _, how := range []string{"cancelled", "failed"} {
		_, err := w.nc.Subscribe(w.names.Prefix+".exec.*.*."+how, func(msg *nats.Msg) {
			parts := strings.Split(msg.Subject, ".")
			executionID := parts[len(parts)-2]
			var event struct {
				At time.Time `json:"at"`
			}
			if err := json.Unmarshal(msg.Data, &event); err != nil || event.At.IsZero() {
				w.opts.Log.Warn("ignored an execution event that does not parse", "executionId", executionID)
				return
			}
			if n := w.stops.ended(executionID, how, event.At); n > 0 {
				w.opts.Log.Info("stopped the handlers of an execution that ended", "executionId", executionID, "how", how, "stopped", n)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}
