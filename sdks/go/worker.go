package flowmonkey

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Version is what the worker writes in its registry entry.
const Version = "0.1.0-go"

const (
	// How long a lane's standing pull waits before it is renewed.
	pullWait         = 2 * time.Second
	registryRefresh  = 10 * time.Second
	defaultAckWait   = 60 * time.Second
	defaultMaxDelive = 5
)

// Options configure a Worker.
type Options struct {
	Region      string
	Concurrency int
	Prefix      string
	// AckWait of pool consumers this worker creates (an existing consumer keeps its own).
	AckWait time.Duration
	Log     *slog.Logger
	// Vault keys open tasks' sealed secrets (Run reads them from FM_VAULT_PRIVATE_KEY(S)).
	Vault VaultKeys
	// Capabilities this worker offers (gpu, …): it also pulls, per handler, the pool of exactly
	// that set, where the engine sends the steps that `require` them.
	Capabilities []string
	// HubDomain is the hub's JetStream domain, for a worker on a leaf region's server: its task
	// pools and results are local, the buckets (registry, progress, checkpoints, blobs) the hub's.
	HubDomain string
}

// Worker runs handlers for the tasks of one region.
type Worker struct {
	opts        Options
	names       Names
	handlers    map[string]Handler
	id          string
	started     time.Time
	nc          *nats.Conn
	js          jetstream.JetStream
	bucketsJS   jetstream.JetStream // the hub's domain on a leaf; js otherwise
	workers     jetstream.KeyValue
	progress    jetstream.KeyValue
	checkpoints jetstream.KeyValue
	stops       runStops
	attempts    attempts
	blobsMu     sync.Mutex
	blobs       jetstream.ObjectStore
	gate        *slotGate
	stop        chan struct{}
	pulls       sync.WaitGroup
	runs        sync.WaitGroup
}

// NewWorker checks the options; Start connects it to the mesh.
func NewWorker(opts Options, handlers ...Handler) (*Worker, error) {
	if len(handlers) == 0 {
		return nil, errors.New("a worker needs at least one handler")
	}
	if !regionPattern.MatchString(opts.Region) {
		return nil, fmt.Errorf("invalid region %q", opts.Region)
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 8
	}
	if opts.Prefix == "" {
		opts.Prefix = "fm"
	}
	if opts.AckWait <= 0 {
		opts.AckWait = defaultAckWait
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	opts.Capabilities = CanonicalCapabilities(opts.Capabilities)
	for _, c := range opts.Capabilities {
		if !tokenPattern.MatchString(c) {
			return nil, fmt.Errorf("invalid capability %q: letters, digits, - and _ only", c)
		}
	}
	byType := map[string]Handler{}
	for _, h := range handlers {
		if !tokenPattern.MatchString(h.Type) {
			return nil, fmt.Errorf("invalid handler type %q", h.Type)
		}
		byType[h.Type] = h
	}
	host, _ := os.Hostname()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return &Worker{
		opts:     opts,
		names:    Names{Prefix: opts.Prefix},
		handlers: byType,
		id:       fmt.Sprintf("go-%s-%s", host, hex.EncodeToString(suffix)),
		started:  time.Now(),
		gate:     newSlotGate(opts.Concurrency),
		stop:     make(chan struct{}),
	}, nil
}

// ID is the worker's id in the registry and in its results.
func (w *Worker) ID() string { return w.id }

// Start binds the pools' consumers, registers the worker and starts pulling.
func (w *Worker) Start(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	w.nc, w.js = nc, js
	type lane struct {
		handler, priority string
		cons              jetstream.Consumer
		beat              time.Duration
	}
	var lanes []lane
	pools := [][]string{nil}
	if len(w.opts.Capabilities) > 0 {
		pools = append(pools, w.opts.Capabilities)
	}
	for _, handler := range w.handlerTypes() {
		for _, caps := range pools {
			for _, priority := range Priorities {
				cons, beat, err := w.openLane(ctx, handler, priority, caps)
				if err != nil {
					return err
				}
				lanes = append(lanes, lane{handler, priority, cons, beat})
			}
		}
	}
	w.bucketsJS = js
	if w.opts.HubDomain != "" {
		if w.bucketsJS, err = jetstream.NewWithDomain(nc, w.opts.HubDomain); err != nil {
			return err
		}
	}
	// Presence and progress buckets are informational: a worker runs without them.
	w.workers, _ = w.bucketsJS.KeyValue(ctx, w.names.Bucket("workers"))
	w.progress, _ = w.bucketsJS.KeyValue(ctx, w.names.Bucket("progress"))
	w.checkpoints, _ = w.bucketsJS.KeyValue(ctx, w.names.Bucket("checkpoints"))
	w.register(ctx)
	if err := w.subscribeExecutionEnds(); err != nil {
		return err
	}
	go w.refreshRegistry()
	for _, l := range lanes {
		w.pulls.Add(1)
		go func() {
			defer w.pulls.Done()
			w.pullLane(l.handler, l.priority, l.cons, l.beat)
		}()
	}
	w.opts.Log.Info("worker started", "workerId", w.id, "region", w.opts.Region, "handlers", w.handlerTypes())
	return nil
}

func (w *Worker) handlerTypes() []string {
	types := make([]string, 0, len(w.handlers))
	for t := range w.handlers {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// openLane binds the pool's shared durable consumer, creating it as the TypeScript worker does when absent.
func (w *Worker) openLane(ctx context.Context, handler, priority string, capabilities []string) (jetstream.Consumer, time.Duration, error) {
	stream, durable := w.names.TasksStream(), PoolConsumer(w.opts.Region, handler, priority, capabilities...)
	cons, err := w.js.Consumer(ctx, stream, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = w.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       durable,
			FilterSubject: w.names.TaskSubject(w.opts.Region, handler, priority, capabilities...),
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait:       w.opts.AckWait,
			MaxDeliver:    defaultMaxDelive,
			MaxAckPending: 10_000,
		})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot open the %s (%s) task pool of %s on stream %s: %w; is the mesh provisioned?", handler, priority, w.opts.Region, stream, err)
	}
	// Heartbeats beat against the ack_wait the server holds, whoever created the consumer.
	ackWait := cons.CachedInfo().Config.AckWait
	if ackWait <= 0 {
		ackWait = w.opts.AckWait
	}
	return cons, max(500*time.Millisecond, ackWait/3), nil
}

func (w *Worker) entry() []byte {
	host, _ := os.Hostname()
	data, _ := json.Marshal(map[string]any{
		"workerId":        w.id,
		"region":          w.opts.Region,
		"handlers":        w.handlerTypes(),
		"capabilities":    CanonicalCapabilities(w.opts.Capabilities),
		"capabilityPools": true,
		"concurrency":     w.opts.Concurrency,
		"inFlight":        w.gate.running(),
		"version":         Version,
		"host":            host,
		"startedAt":       iso(w.started),
	})
	return data
}

func (w *Worker) register(ctx context.Context) {
	if w.workers == nil {
		return
	}
	// `<region>.<workerId>`: the permissions let a region's workers write their region's keys only.
	if _, err := w.workers.Put(ctx, w.opts.Region+"."+w.id, w.entry()); err != nil {
		w.opts.Log.Warn("could not write the worker registry entry", "err", err)
	}
}

func (w *Worker) refreshRegistry() {
	t := time.NewTicker(registryRefresh)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.register(context.Background())
		}
	}
}

// pullLane keeps one pull standing while a slot is free; a pulled task starts once the slot gate
// lets it in (high before normal before low). A lane holds at most one task it has not started.
func (w *Worker) pullLane(handler, priority string, cons jetstream.Consumer, beat time.Duration) {
	for {
		select {
		case <-w.stop:
			return
		case <-w.gate.roomCh():
		}
		// Both may be ready, and select picks at random: stopping wins.
		if w.stopping() {
			return
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(pullWait))
		if err != nil {
			w.opts.Log.Debug("pull failed", "err", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for msg := range batch.Messages() {
			if w.stopping() {
				// Pulled while stopping: straight back to the pool for another worker.
				_ = msg.Nak()
				continue
			}
			w.gate.enter(priority, msg, beat)
			w.runs.Add(1)
			go func() {
				defer w.runs.Done()
				defer w.gate.leave()
				w.run(msg, handler, beat)
			}()
		}
	}
}

func (w *Worker) run(msg jetstream.Msg, handlerType string, beat time.Duration) {
	task, err := ReadTask(msg.Data())
	if err != nil {
		w.opts.Log.Error("undecodable task; terminating it", "err", err)
		_ = msg.Term()
		return
	}
	key := fmt.Sprintf("%s:%d", task.TaskID, task.Attempt)
	copied := heldCopy{msg, make(chan struct{})}
	if !w.attempts.begin(key, copied) {
		// JetStream delivered it again (a late heartbeat) while it runs here: the copy is held,
		// kept from going to another worker, and settled as the original ends.
		w.opts.Log.Warn("task delivered again while it runs here; holding the copy instead of running it twice", "taskId", task.TaskID, "attempt", task.Attempt)
		go heartbeat(msg, beat, copied.beating)
		return
	}
	stored := w.runAttempt(msg, task, handlerType, beat)
	for _, held := range w.attempts.finish(key) {
		close(held.beating)
		if stored {
			_ = held.msg.Ack()
		} else {
			_ = held.msg.Nak()
		}
	}
}

// runAttempt runs one attempt and publishes its result; true when the result was stored.
func (w *Worker) runAttempt(msg jetstream.Msg, task *Task, handlerType string, beat time.Duration) bool {
	started := time.Now()
	handler, ok := w.handlers[task.Handler.Type]
	if !ok {
		handler = w.handlers[handlerType]
	}
	log := w.opts.Log.With("executionId", task.ExecutionID, "taskId", task.TaskID, "stepId", task.StepID, "attempt", task.Attempt, "workerId", w.id, "region", w.opts.Region)
	timeout := time.Duration(task.Config.TimeoutMs) * time.Millisecond
	runCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	beating := make(chan struct{})
	go heartbeat(msg, beat, beating)
	result := w.settle(runCtx, handler, task, log, started, func() { _ = msg.InProgress() })
	close(beating)
	data, err := json.Marshal(result)
	if err != nil {
		result = newResult(task, "failure", w.id, w.opts.Region, started, time.Now())
		result.Failure = newFailure("UNSUPPORTED_JSON", "the handler's output is not JSON: "+err.Error(), false, nil)
		data, _ = json.Marshal(result)
	}
	// Result first, then ack: a worker that dies in between leaves a redelivery, never a lost result.
	pubCtx, pubCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pubCancel()
	if _, err := w.js.Publish(pubCtx, w.names.ResultsSubject(w.opts.Region), data, jetstream.WithMsgID(fmt.Sprintf("%s:%d", task.TaskID, task.Attempt))); err != nil {
		log.Warn("result not published; the task comes back after ack_wait", "err", err)
		return false
	}
	if err := msg.DoubleAck(pubCtx); err != nil {
		log.Debug("ack not confirmed; the task may come back and its result is a duplicate", "err", err)
	}
	return true
}

// settle runs the handler under the task's timeout and turns what happened into a result.
func (w *Worker) settle(ctx context.Context, handler Handler, task *Task, log *slog.Logger, started time.Time, working func()) (result Result) {
	// Secrets open before the handler runs, all or none: a task that cannot have them fails.
	secrets, err := openTaskSecrets(task, w.opts.Vault)
	if err != nil {
		var failure *Failure
		_ = errors.As(err, &failure)
		r := newResult(task, "failure", w.id, w.opts.Region, started, time.Now())
		r.Failure = newFailure(failure.Code, failure.Message, false, nil)
		return r
	}
	defer secrets.clear()
	stop, untrack := w.stops.track(task)
	defer untrack()
	ctx, stopHandler := context.WithCancel(ctx)
	defer stopHandler()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				r := newResult(task, "failure", w.id, w.opts.Region, started, time.Now())
				r.Failure = newFailure("HANDLER_FAILED", fmt.Sprintf("panic: %v", p), true, nil)
				done <- r
			}
		}()
		exec := newExecutionContext(task, w.fetchBlob)
		output, err := handler.Run(&Context{Context: ctx, Task: task, Log: log, Exec: exec, Secrets: secrets, nc: w.nc, kv: w.progress, checkpoints: w.checkpoints, js: w.js, working: working, names: w.names, fetchBlob: w.fetchBlob, putBlob: w.putBlob, region: w.opts.Region})
		r := newResult(task, "success", w.id, w.opts.Region, started, time.Now())
		var failure *Failure
		var paused *PauseSignal
		switch {
		case errors.As(err, &paused):
			r.Outcome, r.Wait = "wait", paused.Wait
			r.ContextUpdates = exec.Updates()
		case errors.As(err, &failure):
			r.Outcome, r.Failure = "failure", newFailure(failure.Code, failure.Message, failure.Retryable, failure.RetryAfterMs)
		case err != nil:
			r.Outcome, r.Failure = "failure", newFailure("HANDLER_FAILED", err.Error(), true, nil)
		default:
			if wait, ok := output.(*WaitRequest); ok {
				r.Outcome, r.Wait = "wait", wait
			} else {
				r.Output = output
			}
			// Context changes go with a success or a wait, never with a failure.
			r.ContextUpdates = exec.Updates()
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r
	case reason := <-stop:
		stopHandler() // the handler's context says so; its slot is free now
		r := newResult(task, "failure", w.id, w.opts.Region, started, time.Now())
		r.Failure = newFailure("EXECUTION_ENDED", reason, false, nil)
		return r
	case <-ctx.Done():
		r := newResult(task, "failure", w.id, w.opts.Region, started, time.Now())
		r.Failure = newFailure("TASK_TIMEOUT", fmt.Sprintf("handler did not finish within %d ms", task.Config.TimeoutMs), true, nil)
		return r
	}
}

// heldCopy is a copy of a running attempt that JetStream delivered again, kept in progress.
type heldCopy struct {
	msg     jetstream.Msg
	beating chan struct{}
}

// attempts are the attempts running here (taskId:attempt), with copies delivered again meanwhile.
type attempts struct {
	mu   sync.Mutex
	held map[string][]heldCopy
}

// begin says whether to run the attempt; false when it runs here already, and `c` is then held
// (in the same step, so the original cannot end in between and leave the copy unsettled).
func (a *attempts) begin(key string, c heldCopy) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.held == nil {
		a.held = map[string][]heldCopy{}
	}
	if copies, running := a.held[key]; running {
		a.held[key] = append(copies, c)
		return false
	}
	a.held[key] = []heldCopy{}
	return true
}

// finish ends the attempt and hands back the copies held while it ran.
func (a *attempts) finish(key string) []heldCopy {
	a.mu.Lock()
	defer a.mu.Unlock()
	copies := a.held[key]
	delete(a.held, key)
	return copies
}

// fetchBlob reads one blob of the region's bucket as stored (gzip'd); nil when there is none. The bucket
// opens on first use (few tasks need it); a failed open is tried again by the next read.
func (w *Worker) fetchBlob(ctx context.Context, name string) ([]byte, error) {
	store, err := w.blobStore(ctx)
	if err != nil {
		return nil, err
	}
	data, err := store.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	return data, err
}

// putBlob stores gzip'd bytes under name in the region's bucket (a checkpoint over the KV limit).
func (w *Worker) putBlob(ctx context.Context, name string, gzipped []byte) error {
	store, err := w.blobStore(ctx)
	if err != nil {
		return err
	}
	_, err = store.PutBytes(ctx, name, gzipped)
	return err
}

func (w *Worker) blobStore(ctx context.Context) (jetstream.ObjectStore, error) {
	w.blobsMu.Lock()
	defer w.blobsMu.Unlock()
	if w.blobs == nil {
		name := w.names.BlobsBucket(w.opts.Region)
		store, err := w.bucketsJS.ObjectStore(ctx, name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			// Made here only where this worker may (a development server); the engine makes it for the regions it knows.
			store, err = w.bucketsJS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: name, Storage: jetstream.FileStorage})
		}
		if err != nil {
			return nil, err
		}
		w.blobs = store
	}
	return w.blobs, nil
}

// heartbeat sends in-progress acks while the handler runs: the task is not redelivered elsewhere.
func heartbeat(msg jetstream.Msg, every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			_ = msg.InProgress()
		}
	}
}

func (w *Worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// Stop drains: no more pulls, running handlers finish (up to grace), the registry entry goes.
func (w *Worker) Stop(grace time.Duration) {
	close(w.stop)
	w.gate.wake()
	w.pulls.Wait()
	finished := make(chan struct{})
	go func() { w.runs.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(grace):
		w.opts.Log.Warn("drain grace over; handlers still running are abandoned (their tasks come back)")
	}
	if w.workers != nil {
		_ = w.workers.Delete(context.Background(), w.opts.Region+"."+w.id)
	}
}
