package flowmonkey

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HandlerFunc runs one task: it returns the step's output (anything json.Marshal takes) or an error.
// A *Failure error says whether to retry; any other error is HANDLER_FAILED, retryable.
type HandlerFunc func(ctx *Context) (any, error)

// Handler serves tasks of one handler type.
type Handler struct {
	Type string
	Run  HandlerFunc
}

// Define is a handler for tasks of `handlerType`.
func Define(handlerType string, run HandlerFunc) Handler { return Handler{Type: handlerType, Run: run} }

// Retryable fails the attempt; the step's retry policy may run it again.
func Retryable(code, message string) error { return newFailure(code, message, true, nil) }

// NonRetryable fails the step for good.
func NonRetryable(code, message string) error { return newFailure(code, message, false, nil) }

func (f *Failure) Error() string { return f.Code + ": " + f.Message }

// Context is what one run of a handler sees.
type Context struct {
	context.Context
	Task  *Task
	Log   *slog.Logger
	nc    *nats.Conn
	kv    jetstream.KeyValue
	names Names
}

// Input decodes the task's input into v.
func (c *Context) Input(v any) error { return json.Unmarshal(c.Task.Input, v) }

// Progress publishes the step's progress on <prefix>.progress.<executionId>.<stepId> and keeps the latest in KV.
func (c *Context) Progress(percent float64, message string) error {
	body := map[string]any{
		"executionId": c.Task.ExecutionID,
		"stepId":      c.Task.StepID,
		"taskId":      c.Task.TaskID,
		"attempt":     c.Task.Attempt,
		"percent":     min(100, max(0, percent)),
		"at":          iso(time.Now()),
	}
	if message != "" {
		body["message"] = message
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if err := c.nc.Publish(c.names.ProgressSubject(c.Task.ExecutionID, c.Task.StepID), data); err != nil {
		return err
	}
	if c.kv != nil {
		// Informational: live updates already went out.
		if _, err := c.kv.Put(c, c.Task.ExecutionID+"."+c.Task.StepID, data); err != nil {
			c.Log.Debug("progress bucket write failed", "err", err)
		}
	}
	return nil
}
