// The example Go worker: handlers go-shout, go-echo and go-nap. test/e2e/mixed-languages.test.ts
// runs it next to the TypeScript and Python workers, npm run bench:languages measures it; the
// protocol scenarios run sdks/go/cmd/flowmonkey-conformance-worker.
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
		flowmonkey.Define("go-echo", func(ctx *flowmonkey.Context) (any, error) {
			var in any
			err := ctx.Input(&in)
			return in, err
		}),
		flowmonkey.Define("go-nap", func(ctx *flowmonkey.Context) (any, error) {
			time.Sleep(100 * time.Millisecond)
			return map[string]any{"by": "go"}, nil
		}),
	)
}
