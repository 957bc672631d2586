// Package flowmonkey runs FlowMonkey Mesh handlers written in Go: a worker that speaks the
// mesh's NATS protocol (docs/PROTOCOL.md) and shares the pools of the TypeScript and Python
// workers.
package flowmonkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Priorities in the order a worker serves them.
var Priorities = []string{"high", "normal", "low"}

var (
	tokenPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	regionPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// The TaskResult schema's limits: a longer field would make the whole result undecodable.
const (
	maxCode    = 128
	maxMessage = 16384
)

// Names are the subjects, streams, consumers and buckets of one mesh prefix (default "fm").
type Names struct{ Prefix string }

func (n Names) TasksStream() string {
	return strings.ReplaceAll(strings.ToUpper(n.Prefix), "-", "_") + "_TASKS"
}
func (n Names) Bucket(name string) string {
	return strings.ReplaceAll(strings.ToLower(n.Prefix), "-", "_") + "_" + name
}

// BlobsBucket is a region's blob bucket (<prefix>_blobs_<region>): its offloaded contexts and
// large checkpoints, the only blob bucket its workers may read.
func (n Names) BlobsBucket(region string) string { return n.Bucket("blobs_" + region) }

// TaskSubject is a pool's task subject: the handler's plain pool, or with capabilities the pool
// of the workers that offer exactly that set (<handler>~<cap>~<cap>).
func (n Names) TaskSubject(region, handler, priority string, capabilities ...string) string {
	return fmt.Sprintf("%s.tasks.%s.%s.%s", n.Prefix, region, PoolToken(handler, capabilities...), priority)
}
func (n Names) ResultsSubject(region string) string { return n.Prefix + ".results." + region }

// EventSubject is a region's worker's event, <prefix>.events.~<region>.<name>: it may resume
// only steps that parked in that region.
func (n Names) EventSubject(region, name string) string {
	return n.Prefix + ".events.~" + region + "." + name
}

// ProgressSubject is a region's worker's progress, <prefix>.progress.~<region>.<executionId>.<stepId>:
// a region's workers may publish only their region's.
func (n Names) ProgressSubject(region, executionID, stepID string) string {
	return fmt.Sprintf("%s.progress.~%s.%s.%s", n.Prefix, region, executionID, stepID)
}

// PoolConsumer is the durable consumer every worker of a (region, handler[, capabilities], priority) pool shares.
func PoolConsumer(region, handler, priority string, capabilities ...string) string {
	return fmt.Sprintf("pool_%s_%s_%s", region, PoolToken(handler, capabilities...), priority)
}

// CanonicalCapabilities sorts capabilities and drops duplicates, as the TypeScript side writes them.
func CanonicalCapabilities(capabilities []string) []string {
	set := map[string]bool{}
	out := []string{}
	for _, c := range capabilities {
		if !set[c] {
			set[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// PoolToken is `handler`, or `handler~cap1~cap2` for the pool of exactly those capabilities.
func PoolToken(handler string, capabilities ...string) string {
	return strings.Join(append([]string{handler}, CanonicalCapabilities(capabilities)...), "~")
}

// Task is what a worker reads of a task message (the fields it relies on).
type Task struct {
	TaskID      string `json:"taskId"`
	ExecutionID string `json:"executionId"`
	FlowID      string `json:"flowId"`
	StepID      string `json:"stepId"`
	Attempt     int    `json:"attempt"`
	Handler     struct {
		Type string `json:"type"`
	} `json:"handler"`
	Input json.RawMessage `json:"input"`
	// Vault maps each secret the step asked for to its value sealed for the worker's pool.
	Vault map[string]string `json:"vault,omitempty"`
	// Metadata.Region is the region the task was sent to (the vault's pool is <region>/<handler>).
	Metadata struct {
		Region       string    `json:"region"`
		DispatchedAt time.Time `json:"dispatchedAt"`
	} `json:"metadata"`
	// Context is the execution's context, inline; {} when ContextRef names an offloaded one.
	Context    json.RawMessage `json:"context,omitempty"`
	ContextRef json.RawMessage `json:"contextRef,omitempty"`
	// Item is set on a map step's item: which element, in which run (its checkpoint is its own).
	Item *struct {
		Index int `json:"index"`
		Run   int `json:"run"`
	} `json:"item,omitempty"`
	Config struct {
		TimeoutMs int `json:"timeoutMs"`
	} `json:"config"`
	// Resume is set on the run after a wait: why the step runs again.
	Resume *struct {
		Reason   string          `json:"reason"`
		Payload  json.RawMessage `json:"payload,omitempty"`
		WaitedMs int64           `json:"waitedMs"`
	} `json:"resume,omitempty"`
}

// ErrBadTask is a task message that does not follow the contract.
var ErrBadTask = errors.New("task does not follow the contract")

// ReadTask decodes and checks the fields a worker relies on.
func ReadTask(data []byte) (*Task, error) {
	var t Task
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTask, err)
	}
	switch {
	case t.TaskID == "" || t.ExecutionID == "" || t.StepID == "":
		return nil, fmt.Errorf("%w: taskId, executionId and stepId are required", ErrBadTask)
	case t.Attempt < 1:
		return nil, fmt.Errorf("%w: attempt must be >= 1", ErrBadTask)
	case !tokenPattern.MatchString(t.Handler.Type):
		return nil, fmt.Errorf("%w: handler.type must be a token", ErrBadTask)
	case t.Config.TimeoutMs <= 0:
		return nil, fmt.Errorf("%w: config.timeoutMs must be positive", ErrBadTask)
	}
	return &t, nil
}

// Failure is a TaskResult's failure.
type Failure struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Retryable    bool   `json:"retryable"`
	RetryAfterMs *int64 `json:"retryAfterMs,omitempty"`
}

func newFailure(code, message string, retryable bool, retryAfterMs *int64) *Failure {
	if code == "" {
		code = "HANDLER_FAILED"
	}
	if len(code) > maxCode {
		code = code[:maxCode]
	}
	if len(message) > maxMessage {
		message = message[:maxMessage-3] + "…"
	}
	return &Failure{Code: code, Message: message, Retryable: retryable, RetryAfterMs: retryAfterMs}
}

// Result is the TaskResult a worker publishes on <prefix>.results.<region>.
type Result struct {
	TaskID      string       `json:"taskId"`
	ExecutionID string       `json:"executionId"`
	StepID      string       `json:"stepId"`
	Attempt     int          `json:"attempt"`
	Outcome     string       `json:"outcome"`
	Output      any          `json:"output,omitempty"`
	Failure     *Failure     `json:"failure,omitempty"`
	Wait        *WaitRequest `json:"wait,omitempty"`
	// ContextUpdates go with a success or a wait (ctx.Exec's recorded changes).
	ContextUpdates []ContextUpdate `json:"contextUpdates,omitempty"`
	Metrics        struct {
		StartedAt   string  `json:"startedAt"`
		CompletedAt string  `json:"completedAt"`
		DurationMs  float64 `json:"durationMs"`
		WorkerID    string  `json:"workerId"`
		Region      string  `json:"region"`
	} `json:"metrics"`
}

// MarshalJSON keeps `output: null` on a success (omitempty would drop it).
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	if r.Outcome != "success" {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		Output any `json:"output"`
	}{plain(r), r.Output})
}

func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func newResult(t *Task, outcome, workerID, region string, started, completed time.Time) Result {
	r := Result{TaskID: t.TaskID, ExecutionID: t.ExecutionID, StepID: t.StepID, Attempt: t.Attempt, Outcome: outcome}
	r.Metrics.StartedAt, r.Metrics.CompletedAt = iso(started), iso(completed)
	r.Metrics.DurationMs = float64(completed.Sub(started).Microseconds()) / 1000
	r.Metrics.WorkerID, r.Metrics.Region = workerID, region
	return r
}

// WaitRequest parks a step: until its token is resumed, a matching event arrives, or WaitUntil.
type WaitRequest struct {
	ResumeToken string `json:"resumeToken"`
	WaitUntil   string `json:"waitUntil,omitempty"`
	ResumeOn    *struct {
		Event  string `json:"event"`
		Filter string `json:"filter,omitempty"`
	} `json:"resumeOn,omitempty"`
	Reason string `json:"reason,omitempty"`
}
