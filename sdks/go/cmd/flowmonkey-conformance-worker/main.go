// The conformance handlers for the Go worker (test/e2e/conformance.test.ts runs them next to the
// TypeScript and Python ones, which do the same).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	flowmonkey "github.com/flowmonkey/mesh/sdks/go"
)

func main() {
	flowmonkey.Run(
		flowmonkey.Define("conf-shout", func(ctx *flowmonkey.Context) (any, error) {
			var in struct {
				Text string `json:"text"`
			}
			_ = ctx.Input(&in)
			if err := ctx.Progress(50, "halfway"); err != nil {
				return nil, err
			}
			return map[string]any{"text": strings.ToUpper(in.Text), "lang": "go"}, nil
		}),
		flowmonkey.Define("conf-flaky", func(ctx *flowmonkey.Context) (any, error) {
			if ctx.Task.Attempt == 1 {
				return nil, flowmonkey.Retryable("FLAKY", "the first attempt fails")
			}
			return map[string]any{"attempt": ctx.Task.Attempt}, nil
		}),
		flowmonkey.Define("conf-refuse", func(*flowmonkey.Context) (any, error) {
			return nil, flowmonkey.NonRetryable("NOPE", "this input is refused")
		}),
		flowmonkey.Define("conf-count", func(ctx *flowmonkey.Context) (any, error) {
			var in struct {
				To      int `json:"to"`
				PauseMs int `json:"pauseMs"`
			}
			_ = ctx.Input(&in)
			var saved struct {
				Next int `json:"next"`
			}
			if _, err := ctx.LoadCheckpoint(&saved); err != nil {
				return nil, err
			}
			for i := saved.Next; i < in.To; i++ {
				if err := ctx.SaveCheckpoint(map[string]int{"next": i + 1}); err != nil {
					return nil, err
				}
				time.Sleep(time.Duration(in.PauseMs) * time.Millisecond)
			}
			return map[string]int{"resumedFrom": saved.Next, "reached": in.To}, nil
		}),
		flowmonkey.Define("conf-approve", func(ctx *flowmonkey.Context) (any, error) {
			if r := ctx.Task.Resume; r != nil {
				var payload any
				if len(r.Payload) > 0 {
					_ = json.Unmarshal(r.Payload, &payload)
				}
				return map[string]any{"reason": r.Reason, "payload": payload}, nil
			}
			id := ctx.Task.ExecutionID
			return ctx.Wait("tok-"+id, "conf.approved", "data.id = '"+id+"'"), nil
		}),
		flowmonkey.Define("conf-emit", func(ctx *flowmonkey.Context) (any, error) {
			var in struct {
				ID string `json:"id"`
			}
			_ = ctx.Input(&in)
			if err := ctx.Emit("conf.approved", map[string]string{"id": in.ID}); err != nil {
				return nil, err
			}
			return map[string]string{"emitted": in.ID}, nil
		}),
		flowmonkey.Define("conf-slow", func(ctx *flowmonkey.Context) (any, error) {
			var in struct {
				Seconds float64 `json:"seconds"`
			}
			_ = ctx.Input(&in)
			// Says it runs: a test then knows the handler, not just a pulled message, is in flight.
			if err := ctx.Progress(1, "sleeping"); err != nil {
				return nil, err
			}
			select {
			case <-time.After(time.Duration(in.Seconds * float64(time.Second))):
				return map[string]any{"slept": in.Seconds}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
		// Grows the context by one key of `size` characters (an offloaded context is made of such keys).
		flowmonkey.Define("conf-fill", func(ctx *flowmonkey.Context) (any, error) {
			var in struct {
				Key  string `json:"key"`
				Size int    `json:"size"`
			}
			_ = ctx.Input(&in)
			return map[string]string{"filled": in.Key}, ctx.Exec.Set(in.Key, strings.Repeat("x", in.Size))
		}),
		// Reads a context the engine offloaded (key by key), and writes one key.
		flowmonkey.Define("conf-read", func(ctx *flowmonkey.Context) (any, error) {
			var before bool
			var marker, big1, big2 string
			for path, into := range map[string]any{"read": &before, "marker": &marker, "big1": &big1, "big2": &big2} {
				if _, err := ctx.Exec.Get(ctx, path, into); err != nil {
					return nil, err
				}
			}
			out := map[string]any{"marker": marker, "big1": len(big1), "big2": len(big2), "readBefore": before}
			return out, ctx.Exec.Set("read", true)
		}),
		// Saves a 1.5 MB checkpoint (over the 1 MiB KV limit: the blob store) and fails; the retry loads it.
		flowmonkey.Define("conf-big-checkpoint", func(ctx *flowmonkey.Context) (any, error) {
			var saved struct {
				Rows string `json:"rows"`
			}
			found, err := ctx.LoadCheckpoint(&saved)
			if err != nil {
				return nil, err
			}
			if found {
				return map[string]any{"loaded": len(saved.Rows), "attempt": ctx.Task.Attempt}, nil
			}
			if err := ctx.SaveCheckpoint(map[string]string{"rows": strings.Repeat("r", 1_500_000)}); err != nil {
				return nil, err
			}
			return nil, flowmonkey.Retryable("AGAIN", "saved a large checkpoint; the next attempt loads it")
		}),
		// Opens the step's sealed secret; answers only its length and a digest, never the value.
		flowmonkey.Define("conf-secret", func(ctx *flowmonkey.Context) (any, error) {
			value, _ := ctx.Secrets.Get("conf-token")
			sum := sha256.Sum256([]byte(value))
			return map[string]any{"length": len(value), "sha256": hex.EncodeToString(sum[:])[:16]}, nil
		}),
		// Pauses with state (slot freed, checkpoint saved); resumed by its token, it loads the state back.
		flowmonkey.Define("conf-pause", func(ctx *flowmonkey.Context) (any, error) {
			if ctx.Task.Resume != nil {
				var state map[string]any
				if _, err := ctx.LoadCheckpoint(&state); err != nil {
					return nil, err
				}
				return map[string]any{"state": state, "reason": ctx.Task.Resume.Reason}, nil
			}
			return nil, ctx.Pause("holding", flowmonkey.PauseOptions{State: map[string]int{"n": 5}, ResumeToken: "pause-" + ctx.Task.ExecutionID})
		}),
	)
}
