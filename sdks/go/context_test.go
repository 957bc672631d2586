package flowmonkey

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func gz(t *testing.T, v any) ([]byte, int) {
	t.Helper()
	raw, _ := json.Marshal(v)
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(raw)
	_ = w.Close()
	return buf.Bytes(), len(raw)
}

func TestInlineContextReadsSeeWritesAndRecordThem(t *testing.T) {
	task := &Task{Context: json.RawMessage(`{"order":{"id":"o-1","lines":2},"n":1}`)}
	c := newExecutionContext(task, nil)
	ctx := context.Background()
	if err := c.Set("order.status", "paid"); err != nil {
		t.Fatal(err)
	}
	_ = c.Merge("order", map[string]any{"lines": 3})
	_ = c.Delete("n")
	var order map[string]any
	if ok, err := c.Get(ctx, "order", &order); !ok || err != nil {
		t.Fatalf("order: %v %v", ok, err)
	}
	if order["status"] != "paid" || order["lines"] != float64(3) || order["id"] != "o-1" {
		t.Fatalf("order = %v", order)
	}
	var n any
	if ok, _ := c.Get(ctx, "n", &n); ok {
		t.Fatal("n was deleted")
	}
	ops := []string{}
	for _, u := range c.Updates() {
		ops = append(ops, u.Op)
	}
	if strings.Join(ops, ",") != "set,merge,delete" {
		t.Fatalf("updates %v", ops)
	}
	if err := c.Set("__proto__.x", 1); !errors.Is(err, ErrContext) {
		t.Fatalf("a prototype path must be refused, got %v", err)
	}
}

func TestOffloadedContextLoadsOnlyTheKeysRead(t *testing.T) {
	bigBlob, bigBytes := gz(t, map[string]any{"rows": []string{"a", "b"}})
	manifestBlob, manifestBytes := gz(t, map[string]any{"version": 1, "keys": map[string]any{
		"small": map[string]any{"kind": "inline", "value": 7},
		"big":   map[string]any{"kind": "blob", "name": "context/e/b", "bytes": bigBytes},
	}})
	blobs := map[string][]byte{"context/e/m": manifestBlob, "context/e/b": bigBlob}
	fetched := []string{}
	fetch := func(_ context.Context, name string) ([]byte, error) {
		fetched = append(fetched, name)
		return blobs[name], nil
	}
	ref, _ := json.Marshal(map[string]any{"name": "context/e/m", "encoding": "gzip", "size": manifestBytes, "digest": "sha256:x"})
	c := newExecutionContext(&Task{Context: json.RawMessage(`{}`), ContextRef: ref}, fetch)
	ctx := context.Background()
	var small int
	if ok, err := c.Get(ctx, "small", &small); !ok || err != nil || small != 7 {
		t.Fatalf("small = %d (%v %v)", small, ok, err)
	}
	if strings.Join(fetched, ",") != "context/e/m" {
		t.Fatalf("fetched %v before reading big", fetched)
	}
	_ = c.Set("big.count", 2) // below a key not loaded yet: replayed when it loads
	var big struct {
		Rows  []string `json:"rows"`
		Count int      `json:"count"`
	}
	if ok, err := c.Get(ctx, "big", &big); !ok || err != nil || len(big.Rows) != 2 || big.Count != 2 {
		t.Fatalf("big = %+v (%v %v)", big, ok, err)
	}
	delete(blobs, "context/e/b")
	c2 := newExecutionContext(&Task{ContextRef: ref}, fetch)
	if _, err := c2.Get(ctx, "big", &big); !errors.Is(err, ErrContext) {
		t.Fatalf("a missing blob must be an error, got %v", err)
	}
}
