package flowmonkey

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNamesMatchTheTypeScriptOnes(t *testing.T) {
	n := Names{Prefix: "fm"}
	for got, want := range map[string]string{
		n.TasksStream():                                                   "FM_TASKS",
		n.Bucket("workers"):                                               "fm_workers",
		n.BlobsBucket("eu-west-1"):                                        "fm_blobs_eu-west-1",
		n.ProgressSubject("eu-west-1", "e", "s"):                          "fm.progress.~eu-west-1.e.s",
		n.TaskSubject("us-east-1", "echo", "high"):                        "fm.tasks.us-east-1.echo.high",
		n.ResultsSubject("eu-west-1"):                                     "fm.results.eu-west-1",
		PoolConsumer("us-east-1", "echo", "normal"):                       "pool_us-east-1_echo_normal",
		n.TaskSubject("us-east-1", "render", "high", "gpu", "avx", "gpu"): "fm.tasks.us-east-1.render~avx~gpu.high",
		PoolConsumer("us-east-1", "render", "low", "gpu"):                 "pool_us-east-1_render~gpu_low",
		Names{Prefix: "t-x"}.TasksStream():                                "T_X_TASKS",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestReadTaskRefusesWhatBreaksTheContract(t *testing.T) {
	good := `{"taskId":"e/s","executionId":"e","stepId":"s","attempt":1,"handler":{"type":"echo"},"config":{"timeoutMs":1000},"input":{"a":1}}`
	if _, err := ReadTask([]byte(good)); err != nil {
		t.Fatalf("a good task was refused: %v", err)
	}
	for _, bad := range []string{`[]`, strings.Replace(good, `"attempt":1`, `"attempt":0`, 1), strings.Replace(good, `"echo"`, `"a.b"`, 1), strings.Replace(good, `"timeoutMs":1000`, `"timeoutMs":0`, 1), strings.Replace(good, `"taskId":"e/s"`, `"taskId":""`, 1)} {
		if _, err := ReadTask([]byte(bad)); !errors.Is(err, ErrBadTask) {
			t.Errorf("%s: got %v, want ErrBadTask", bad, err)
		}
	}
}

func TestResultShapes(t *testing.T) {
	task := &Task{TaskID: "e/s", ExecutionID: "e", StepID: "s", Attempt: 2}
	ok := newResult(task, "success", "w", "us-east-1", time.Unix(0, 0), time.Unix(0, 500_000_000))
	data, _ := json.Marshal(ok)
	var back map[string]any
	_ = json.Unmarshal(data, &back)
	if back["output"] != nil || !strings.Contains(string(data), `"output":null`) {
		t.Errorf("a success without output must carry output: null, got %s", data)
	}
	if back["metrics"].(map[string]any)["durationMs"] != 500.0 || back["metrics"].(map[string]any)["startedAt"] != "1970-01-01T00:00:00.000Z" {
		t.Errorf("metrics: %s", data)
	}
	bad := newResult(task, "failure", "w", "us-east-1", time.Unix(0, 0), time.Unix(0, 0))
	bad.Failure = newFailure(strings.Repeat("X", 200), "m", true, nil)
	data, _ = json.Marshal(bad)
	if strings.Contains(string(data), `"output"`) || len(bad.Failure.Code) != maxCode {
		t.Errorf("failure: %s", data)
	}
}

func TestSlotGateGivesAFreedSlotToTheHighestPriorityWaiter(t *testing.T) {
	g := newSlotGate(1)
	g.enter("normal", nil, time.Hour) // takes the only slot at once
	order := make(chan string, 2)
	for _, p := range []string{"low", "high"} {
		go func() { g.enter(p, nil, time.Hour); order <- p }()
		for g.waitersNow() == 0 || (p == "high" && g.waitersNow() < 2) {
			time.Sleep(time.Millisecond)
		}
	}
	g.leave()
	if got := <-order; got != "high" {
		t.Fatalf("the freed slot went to %s, want high", got)
	}
	g.leave()
	if got := <-order; got != "low" {
		t.Fatalf("then %s, want low", got)
	}
}

func TestWaitResultShape(t *testing.T) {
	task := &Task{TaskID: "e/s", ExecutionID: "e", StepID: "s", Attempt: 1}
	ctx := &Context{Task: task}
	r := newResult(task, "wait", "w", "us-east-1", time.Unix(0, 0), time.Unix(0, 0))
	r.Wait = ctx.Wait("tok-1", "order.paid", "data.id = 'e'")
	data, _ := json.Marshal(r)
	var back map[string]any
	_ = json.Unmarshal(data, &back)
	wait, _ := back["wait"].(map[string]any)
	if wait["resumeToken"] != "tok-1" || wait["resumeOn"].(map[string]any)["event"] != "order.paid" {
		t.Errorf("wait: %s", data)
	}
	if _, has := back["output"]; has {
		t.Errorf("a wait carries no output: %s", data)
	}
}

// The shipped permissions grant a region's workers `$KV.fm_checkpoints.<region>.>` only: the
// checkpoint and progress keys start with the worker's region.
func TestStepKeysStartWithTheWorkersRegion(t *testing.T) {
	task := &Task{TaskID: "e/s", ExecutionID: "e", StepID: "s", Attempt: 2}
	task.Metadata.Region = "us-east-1"
	ctx := &Context{Task: task, region: "eu-west-1"}
	if got := ctx.checkpointKey(); got != "eu-west-1.e.s" {
		t.Errorf("checkpoint key %q", got)
	}
	task.Item = &struct {
		Index int `json:"index"`
		Run   int `json:"run"`
	}{Index: 4, Run: 2}
	if got := ctx.checkpointKey(); got != "eu-west-1.e.s.item-2-4" {
		t.Errorf("map item checkpoint key %q", got)
	}
	if got := (&Context{Task: task}).stepKey("s"); got != "us-east-1.e.s" {
		t.Errorf("without a worker region, the task's: %q", got)
	}
}

func TestEventsGoOutUnderTheWorkersRegion(t *testing.T) {
	// The shipped permissions let a region's workers publish <prefix>.events.~<region>.> only.
	task := &Task{TaskID: "e/s", ExecutionID: "e", StepID: "s", Attempt: 1}
	task.Metadata.Region = "us-east-1"
	names := Names{Prefix: "fm"}
	if got := names.EventSubject((&Context{Task: task, region: "eu-west-1"}).workerRegion(), "order.paid"); got != "fm.events.~eu-west-1.order.paid" {
		t.Errorf("event subject %q", got)
	}
	if got := (&Context{Task: task}).workerRegion(); got != "us-east-1" {
		t.Errorf("without a worker region, the task's: %q", got)
	}
}
