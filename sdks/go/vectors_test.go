package flowmonkey

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The protocol's test vectors (schemas/vectors, captured from the TypeScript worker on a real
// mesh): every task is read, the vault vector's sealed secret opens, and results built here
// carry the same fields as the TypeScript worker's.
func TestVectors(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "schemas", "vectors", "*.json"))
	if len(files) < 7 {
		t.Fatalf("found %d vectors, want at least 7", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var vector struct {
				Task           json.RawMessage            `json:"task"`
				Result         map[string]json.RawMessage `json:"result"`
				PoolPrivateKey string                     `json:"poolPrivateKey"`
				Secret         string                     `json:"secret"`
			}
			if err := json.Unmarshal(data, &vector); err != nil {
				t.Fatal(err)
			}
			task, err := ReadTask(vector.Task)
			if err != nil {
				t.Fatalf("ReadTask: %v", err)
			}
			var outcome string
			_ = json.Unmarshal(vector.Result["outcome"], &outcome)
			mine := newResult(task, outcome, "go", "us-east-1", task.Metadata.DispatchedAt, task.Metadata.DispatchedAt)
			switch outcome {
			case "success":
				mine.Output = map[string]any{}
			case "wait":
				mine.Wait = &WaitRequest{ResumeToken: "t"}
			default:
				mine.Failure = newFailure("X", "x", false, nil)
			}
			encoded, _ := json.Marshal(mine)
			var fields map[string]json.RawMessage
			_ = json.Unmarshal(encoded, &fields)
			for key := range vector.Result {
				if _, ok := fields[key]; !ok && key != "contextUpdates" && key != "logs" {
					t.Errorf("the TypeScript worker's result has %q; this SDK's has not", key)
				}
			}
			if vector.Secret != "" {
				keys, err := func() (VaultKeys, error) {
					t.Setenv("FM_VAULT_PRIVATE_KEYS", "")
					t.Setenv("FM_VAULT_PRIVATE_KEY", vector.PoolPrivateKey)
					return VaultKeysFromEnv()
				}()
				if err != nil {
					t.Fatal(err)
				}
				secrets, err := openTaskSecrets(task, keys)
				if err != nil {
					t.Fatal(err)
				}
				if v, _ := secrets.Get("conf-token"); v != vector.Secret {
					t.Fatalf("opened %q, want the vector's secret", v)
				}
			}
		})
	}
}
