// The example Go worker: handlers go-shout, go-echo, go-flaky, go-refuse, go-nap and go-slow (npm run bench:languages runs go-echo) (the Go SDK's e2e
// test runs it next to the TypeScript and Python workers).
package main

import (
	"strings"
	"time"

	flowmonkey "github.com/flowmonkey/mesh/sdks/go"
)

func main() {
	flowmonkey.Run(
		flowmonkey.Define("go-shout", func(ctx *flowmonkey.Context) (any, error) {
			var in struct {
				Text string `json:"text"`
			}
			if err := ctx.Input(&in); err != nil {
				return nil, flowmonkey.NonRetryable("BAD_INPUT", err.Error())
			}
			if err := ctx.Progress(50, "halfway in go"); err != nil {
				return nil, err
			}
			return map[string]any{"text": strings.ToUpper(in.Text), "by": "go"}, nil
		}),
		flowmonkey.Define("go-flaky", func(ctx *flowmonkey.Context) (any, error) {
			if ctx.Task.Attempt == 1 {
				return nil, flowmonkey.Retryable("FLAKY", "the first attempt fails")
			}
			return map[string]any{"attempt": ctx.Task.Attempt}, nil
		}),
		flowmonkey.Define("go-refuse", func(*flowmonkey.Context) (any, error) {
			return nil, flowmonkey.NonRetryable("NOPE", "this input is refused")
		}),
		flowmonkey.Define("go-echo", func(ctx *flowmonkey.Context) (any, error) {
			var in any
			err := ctx.Input(&in)
			return in, err
		}),
		flowmonkey.Define("go-nap", func(ctx *flowmonkey.Context) (any, error) {
			time.Sleep(100 * time.Millisecond)
			return map[string]any{"by": "go"}, nil
		}),
		flowmonkey.Define("go-slow", func(ctx *flowmonkey.Context) (any, error) {
			var in struct {
				Seconds float64 `json:"seconds"`
			}
			_ = ctx.Input(&in)
			select {
			case <-time.After(time.Duration(in.Seconds * float64(time.Second))):
				return map[string]any{"slept": in.Seconds}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
	)
}
