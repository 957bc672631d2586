package flowmonkey

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
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
	Task *Task
	Log  *slog.Logger
	// Secrets are the vault secrets the step asked for, opened for this task only.
	Secrets *Secrets
	// Exec is the execution's context: Get (an offloaded one is read lazily), Set, Merge, Delete.
	Exec        *ExecutionContext
	nc          *nats.Conn
	kv          jetstream.KeyValue
	checkpoints jetstream.KeyValue
	js          jetstream.JetStream
	working     func()
	names       Names
	fetchBlob   BlobFetch
	putBlob     func(ctx context.Context, name string, gzipped []byte) error
	// region is the worker's: the checkpoint and progress keys start with it (the permissions
	// grant a region's workers its keys only). Empty: the region the task was sent to.
	region string
}

// Wait is what a handler returns to park its step without holding a worker: it is resumed by
// its token (`flowmonkey resume <token>`), by an event named `event` (matching `filter`, JSONata;
// "" for none), and runs again with ctx.Task.Resume set.
func (c *Context) Wait(resumeToken, event, filter string) *WaitRequest {
	w := &WaitRequest{ResumeToken: resumeToken}
	if event != "" {
		w.ResumeOn = &struct {
			Event  string `json:"event"`
			Filter string `json:"filter,omitempty"`
		}{Event: event, Filter: filter}
	}
	return w
}

// PauseOptions say what resumes a paused step besides its token, and what it keeps meanwhile.
type PauseOptions struct {
	// State is saved as the step's checkpoint (nil: none); LoadCheckpoint returns it on the run after.
	State any
	// MaxWait resumes the step by itself after this long (0: never).
	MaxWait time.Duration
	// Event (with Filter, JSONata) resumes it when such an event is published.
	Event, Filter string
	// ResumeToken is the token `flowmonkey resume` takes (default: a generated one).
	ResumeToken string
}

// PauseSignal is what Pause returns: hand it back from the handler (`return nil, ctx.Pause(…)`);
// the run ends with its step waiting.
type PauseSignal struct{ Wait *WaitRequest }

func (p *PauseSignal) Error() string { return "paused: " + p.Wait.Reason }

// Pause frees this worker slot until the step is resumed (its token, Event, or MaxWait passing),
// saving State as the checkpoint first. When resumed the handler runs again: LoadCheckpoint
// returns the state and ctx.Task.Resume says why.
func (c *Context) Pause(reason string, opts PauseOptions) error {
	if opts.State != nil {
		if err := c.SaveCheckpoint(opts.State); err != nil {
			return err
		}
	}
	token := opts.ResumeToken
	if token == "" {
		token = "wt_" + nuid.Next()
	}
	w := c.Wait(token, opts.Event, opts.Filter)
	w.Reason = reason
	if opts.MaxWait > 0 {
		w.WaitUntil = iso(time.Now().Add(opts.MaxWait))
	}
	return &PauseSignal{Wait: w}
}

// Emit publishes an event on <prefix>.events.~<region>.<name> (stream FM_EVENTS): it may resume
// steps waiting for it that parked in this worker's region.
func (c *Context) Emit(name string, data any) error {
	body, err := json.Marshal(map[string]any{"data": data, "executionId": c.Task.ExecutionID, "stepId": c.Task.StepID, "at": iso(time.Now())})
	if err != nil {
		return err
	}
	_, err = c.js.Publish(c, c.names.EventSubject(c.workerRegion(), name), body)
	return err
}

// InlineCheckpointMaxBytes is the checkpoint envelope's inline limit, as the TypeScript
// worker's: a larger checkpoint goes gzip'd to the blob store, and its KV entry says where.
const InlineCheckpointMaxBytes = 1024 * 1024

// checkpointSlot is the step's checkpoint slot: its stepId, or a map item's own.
func (c *Context) checkpointSlot() string {
	// A map item keeps its own checkpoint: the step's items run side by side.
	if c.Task.Item != nil {
		return fmt.Sprintf("%s.item-%d-%d", c.Task.StepID, c.Task.Item.Run, c.Task.Item.Index)
	}
	return c.Task.StepID
}

func (c *Context) checkpointKey() string {
	return c.stepKey(c.checkpointSlot())
}

// workerRegion is the worker's region, or the region the task was sent to.
func (c *Context) workerRegion() string {
	if c.region != "" {
		return c.region
	}
	return c.Task.Metadata.Region
}

// stepKey is `<region>.<executionId>.<slot>`, the key layout of fm_checkpoints and fm_progress.
func (c *Context) stepKey(slot string) string {
	return c.workerRegion() + "." + c.Task.ExecutionID + "." + slot
}

// SaveCheckpoint saves the step's checkpoint (KV fm_checkpoints, envelope {"state": …}): a later
// attempt, or a redelivery after a crash, loads it. Counts as a heartbeat.
func (c *Context) SaveCheckpoint(state any) error {
	if c.checkpoints == nil {
		return Retryable("UNAVAILABLE", "the checkpoint bucket is not open on this worker")
	}
	data, err := json.Marshal(map[string]any{"state": state})
	if err != nil {
		return NonRetryable("UNSUPPORTED_JSON", "the checkpoint is not JSON: "+err.Error())
	}
	if len(data) > InlineCheckpointMaxBytes {
		if c.putBlob == nil {
			return NonRetryable("PAYLOAD_TOO_LARGE", fmt.Sprintf("checkpoint of %d bytes and no blob store on this worker", len(data)))
		}
		// Named as the TypeScript worker names it (no region: a blob is found through its entry).
		blob := "checkpoints/" + c.Task.ExecutionID + "." + c.checkpointSlot()
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(data)
		if err := zw.Close(); err != nil {
			return err
		}
		if err := c.putBlob(c, blob, gz.Bytes()); err != nil {
			return err
		}
		data, _ = json.Marshal(map[string]any{"blob": blob, "bytes": len(data)})
	}
	if _, err := c.checkpoints.Put(c, c.checkpointKey(), data); err != nil {
		return err
	}
	if c.working != nil {
		c.working()
	}
	return nil
}

// LoadCheckpoint decodes the step's last saved checkpoint into v; false when there is none.
func (c *Context) LoadCheckpoint(v any) (bool, error) {
	if c.checkpoints == nil {
		return false, Retryable("UNAVAILABLE", "the checkpoint bucket is not open on this worker")
	}
	entry, err := c.checkpoints.Get(c, c.checkpointKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) || (err == nil && len(entry.Value()) == 0) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var envelope struct {
		State json.RawMessage `json:"state"`
		Blob  string          `json:"blob"`
		Bytes int64           `json:"bytes"`
	}
	if err := json.Unmarshal(entry.Value(), &envelope); err != nil {
		return false, err
	}
	if envelope.Blob != "" {
		// The state is in the blob store: read it back within the size the entry announces.
		if err := fetchBlobJSON(c, c.fetchBlob, envelope.Blob, envelope.Bytes, "checkpoint "+c.checkpointKey(), &envelope); err != nil {
			return false, err
		}
	}
	return true, json.Unmarshal(envelope.State, v)
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
	if err := c.nc.Publish(c.names.ProgressSubject(c.workerRegion(), c.Task.ExecutionID, c.Task.StepID), data); err != nil {
		return err
	}
	if c.kv != nil {
		// Informational: live updates already went out.
		if _, err := c.kv.Put(c, c.stepKey(c.Task.StepID), data); err != nil {
			c.Log.Debug("progress bucket write failed", "err", err)
		}
	}
	return nil
}
