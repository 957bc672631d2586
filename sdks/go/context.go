package flowmonkey

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ExecutionContext is the execution's context as a handler sees it (ctx.Exec), as the TypeScript
// worker's ctx.context. Reads see the handler's own writes; writes are recorded as the result's
// contextUpdates, which the engine applies with a success or a wait. Paths are dot-separated.
//
// A large context (over the engine's FM_CONTEXT_INLINE_MAX_BYTES) is not in the task: the task
// carries contextRef, a gzip'd manifest in the region's blob bucket (fm_blobs_<region>), and each
// large top-level key is its own gzip'd blob, fetched only when that key is read (Get("a.b") loads key "a"), once per
// task (docs/PROTOCOL.md, "Offloaded context"). Writes load nothing.
type ExecutionContext struct {
	source   contextSource
	view     map[string]any
	resolved map[string]bool
	pending  map[string][]func(map[string]any)
	updates  []ContextUpdate
}

// ContextUpdate is one recorded change: {op: set|merge|delete, path?, value?}.
type ContextUpdate struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// MarshalJSON keeps `value: null` on a set (omitempty would drop a set to null).
func (u ContextUpdate) MarshalJSON() ([]byte, error) {
	type plain ContextUpdate
	if u.Op != "set" {
		return json.Marshal(plain(u))
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{u.Op, u.Path, u.Value})
}

// ErrContext is a context read that cannot be served: a bad path, or a blob missing or not what
// its reference says.
var ErrContext = errors.New("context")

// Keys that would reach a prototype in the engine's JavaScript: refused in paths, as the engine does.
var forbiddenKeys = map[string]bool{"__proto__": true, "prototype": true, "constructor": true}

type contextSource interface {
	keys(ctx context.Context) ([]string, error)
	load(ctx context.Context, key string) (value any, present bool, err error)
}

// BlobFetch returns one blob of the region's bucket (fm_blobs_<region>) as stored (gzip'd); nil, nil when there is none.
type BlobFetch func(ctx context.Context, name string) ([]byte, error)

func newExecutionContext(t *Task, fetch BlobFetch) *ExecutionContext {
	var source contextSource
	if len(t.ContextRef) > 0 && string(t.ContextRef) != "null" {
		source = &offloadedSource{fetch: fetch, ref: t.ContextRef}
	} else {
		source = &inlineSource{raw: t.Context}
	}
	return &ExecutionContext{source: source, view: map[string]any{}, resolved: map[string]bool{}, pending: map[string][]func(map[string]any){}}
}

func parsePath(path string) ([]string, error) {
	keys := strings.Split(path, ".")
	for _, k := range keys {
		if k == "" || forbiddenKeys[k] {
			return nil, fmt.Errorf("%w: invalid path %q", ErrContext, path)
		}
	}
	return keys, nil
}

// normalize turns any JSON-able value into the maps and slices a JSON decode gives.
func normalize(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrContext, err)
	}
	var out any
	return out, json.Unmarshal(data, &out)
}

func parentOf(root map[string]any, keys []string) map[string]any {
	node := root
	for _, k := range keys[:len(keys)-1] {
		next, ok := node[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			node[k] = next
		}
		node = next
	}
	return node
}

func (c *ExecutionContext) resolve(ctx context.Context, key string) error {
	if c.resolved[key] {
		return nil
	}
	value, present, err := c.source.load(ctx, key)
	if err != nil {
		return err
	}
	if present {
		c.view[key] = value // decoded for this task alone: changed in place
	}
	for _, op := range c.pending[key] {
		op(c.view)
	}
	delete(c.pending, key)
	c.resolved[key] = true
	return nil
}

func (c *ExecutionContext) change(key string, op func(map[string]any)) {
	if !c.resolved[key] {
		c.pending[key] = append(c.pending[key], op)
		return
	}
	op(c.view)
}

func (c *ExecutionContext) replace(key string, value any, present bool) {
	delete(c.pending, key)
	if present {
		c.view[key] = value
	} else {
		delete(c.view, key)
	}
	c.resolved[key] = true
}

// Get decodes the value at path into v ("" for the whole context, which loads every key);
// false when it is absent.
func (c *ExecutionContext) Get(ctx context.Context, path string, v any) (bool, error) {
	var node any = c.view
	if path == "" {
		keys, err := c.source.keys(ctx)
		if err != nil {
			return false, err
		}
		for _, k := range keys {
			if err := c.resolve(ctx, k); err != nil {
				return false, err
			}
		}
	} else {
		keys, err := parsePath(path)
		if err != nil {
			return false, err
		}
		if err := c.resolve(ctx, keys[0]); err != nil {
			return false, err
		}
		for _, k := range keys {
			obj, ok := node.(map[string]any)
			if !ok {
				return false, nil
			}
			if node, ok = obj[k]; !ok {
				return false, nil
			}
		}
	}
	data, err := json.Marshal(node)
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(data, v)
}

// Set records `value` at path.
func (c *ExecutionContext) Set(path string, value any) error {
	keys, err := parsePath(path)
	if err != nil {
		return err
	}
	norm, err := normalize(value)
	if err != nil {
		return err
	}
	if len(keys) == 1 {
		c.replace(keys[0], norm, true)
	} else {
		c.change(keys[0], func(root map[string]any) { parentOf(root, keys)[keys[len(keys)-1]] = deepCopy(norm) })
	}
	c.updates = append(c.updates, ContextUpdate{Op: "set", Path: path, Value: value})
	return nil
}

// Merge shallow-merges the object `value` into the object at path ("" for the root).
func (c *ExecutionContext) Merge(path string, value map[string]any) error {
	normAny, err := normalize(value)
	if err != nil {
		return err
	}
	norm, _ := normAny.(map[string]any)
	if path == "" {
		for k, v := range norm {
			if !forbiddenKeys[k] {
				c.replace(k, v, true)
			}
		}
		c.updates = append(c.updates, ContextUpdate{Op: "merge", Value: value})
		return nil
	}
	keys, err := parsePath(path)
	if err != nil {
		return err
	}
	c.change(keys[0], func(root map[string]any) {
		parent := parentOf(root, keys)
		target, ok := parent[keys[len(keys)-1]].(map[string]any)
		if !ok {
			target = map[string]any{}
			parent[keys[len(keys)-1]] = target
		}
		for k, v := range norm {
			if !forbiddenKeys[k] {
				target[k] = deepCopy(v)
			}
		}
	})
	c.updates = append(c.updates, ContextUpdate{Op: "merge", Path: path, Value: value})
	return nil
}

// Delete records the removal of path.
func (c *ExecutionContext) Delete(path string) error {
	keys, err := parsePath(path)
	if err != nil {
		return err
	}
	if len(keys) == 1 {
		c.replace(keys[0], nil, false)
	} else {
		c.change(keys[0], func(root map[string]any) {
			var node any = root
			for _, k := range keys[:len(keys)-1] { // only what exists: deleting a missing path creates nothing
				obj, ok := node.(map[string]any)
				if !ok {
					return
				}
				node = obj[k]
			}
			if obj, ok := node.(map[string]any); ok {
				delete(obj, keys[len(keys)-1])
			}
		})
	}
	c.updates = append(c.updates, ContextUpdate{Op: "delete", Path: path})
	return nil
}

// Updates are the recorded changes in order (nil when there were none).
func (c *ExecutionContext) Updates() []ContextUpdate { return c.updates }

func deepCopy(v any) any {
	out, _ := normalize(v)
	return out
}

type inlineSource struct{ raw json.RawMessage }

func (s *inlineSource) object() (map[string]json.RawMessage, error) {
	obj := map[string]json.RawMessage{}
	if len(s.raw) == 0 || string(s.raw) == "null" {
		return obj, nil
	}
	return obj, json.Unmarshal(s.raw, &obj)
}

func (s *inlineSource) keys(context.Context) ([]string, error) {
	obj, err := s.object()
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	return keys, err
}

func (s *inlineSource) load(_ context.Context, key string) (any, bool, error) {
	obj, err := s.object()
	raw, ok := obj[key]
	if err != nil || !ok {
		return nil, false, err
	}
	var v any
	return v, true, json.Unmarshal(raw, &v)
}

type manifestEntry struct {
	Kind  string `json:"kind"`
	Value any    `json:"value"`
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

type offloadedSource struct {
	fetch    BlobFetch
	ref      json.RawMessage
	manifest map[string]manifestEntry
}

// fetchBlobJSON decodes into v the gzip'd JSON blob `name` of the region's bucket, read with fetch, at most
// maxBytes once unzipped (the size its reference announced): an offloaded context's manifest and
// keys, a large checkpoint.
func fetchBlobJSON(ctx context.Context, fetch BlobFetch, name string, maxBytes int64, what string, v any) error {
	if fetch == nil {
		return fmt.Errorf("%w: no blob bucket on this worker to read %s from", ErrContext, name)
	}
	data, err := fetch(ctx, name)
	if err != nil {
		return err
	}
	if data == nil {
		// Content-addressed and written once: a missing blob was deleted under a running execution.
		return fmt.Errorf("%w: %s is missing from the blob bucket (%s)", ErrContext, what, name)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %s (%s) is not gzip data: %v", ErrContext, what, name, err)
	}
	// At most what the reference announced: a hostile blob cannot exhaust memory.
	raw, err := io.ReadAll(io.LimitReader(zr, maxBytes+1))
	if err != nil {
		return fmt.Errorf("%w: %s (%s): %v", ErrContext, what, name, err)
	}
	if int64(len(raw)) > maxBytes {
		return fmt.Errorf("%w: %s (%s) is larger than the %d bytes its reference says", ErrContext, what, name, maxBytes)
	}
	return json.Unmarshal(raw, v)
}

func (s *offloadedSource) entries(ctx context.Context) (map[string]manifestEntry, error) {
	if s.manifest != nil {
		return s.manifest, nil
	}
	var ref struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal(s.ref, &ref); err != nil || ref.Name == "" {
		return nil, fmt.Errorf("%w: contextRef is not a blob reference", ErrContext)
	}
	var manifest struct {
		Version int                      `json:"version"`
		Keys    map[string]manifestEntry `json:"keys"`
	}
	if err := fetchBlobJSON(ctx, s.fetch, ref.Name, ref.Size, "context manifest", &manifest); err != nil {
		return nil, err
	}
	if manifest.Version != 1 || manifest.Keys == nil {
		return nil, fmt.Errorf("%w: the context manifest is not a version 1 manifest", ErrContext)
	}
	s.manifest = manifest.Keys
	return s.manifest, nil
}

func (s *offloadedSource) keys(ctx context.Context) ([]string, error) {
	entries, err := s.entries(ctx)
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	return keys, err
}

func (s *offloadedSource) load(ctx context.Context, key string) (any, bool, error) {
	entries, err := s.entries(ctx)
	if err != nil {
		return nil, false, err
	}
	entry, ok := entries[key]
	if !ok {
		return nil, false, nil
	}
	if entry.Kind == "inline" {
		return entry.Value, true, nil
	}
	var v any
	if err := fetchBlobJSON(ctx, s.fetch, entry.Name, entry.Bytes, fmt.Sprintf("context key %q", key), &v); err != nil {
		return nil, false, err
	}
	return v, true, nil
}
