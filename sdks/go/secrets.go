package flowmonkey

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/crypto/nacl/box"
)

// VaultKeys are this worker's pool private keys (X25519, from `flowmonkey secrets keygen`): one
// per handler, or one for all. A step that lists secrets under `vault:` gets a task whose
// `vault` maps each name to its value sealed (libsodium's crypto_box_seal) for its pool's public
// key; the worker opens all of them before the handler runs, or none.
type VaultKeys struct {
	Default    *[32]byte
	PerHandler map[string]*[32]byte
}

func parseVaultKey(value, what string) (*[32]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("%s is not a base64 32-byte X25519 private key", what)
	}
	var key [32]byte
	copy(key[:], raw)
	return &key, nil
}

// VaultKeysFromEnv reads FM_VAULT_PRIVATE_KEYS ({"<handler>": "<base64>"}) and
// FM_VAULT_PRIVATE_KEY (base64), as flowmonkey-worker does; a malformed key is an error.
func VaultKeysFromEnv() (VaultKeys, error) {
	keys := VaultKeys{PerHandler: map[string]*[32]byte{}}
	if v := os.Getenv("FM_VAULT_PRIVATE_KEY"); v != "" {
		key, err := parseVaultKey(v, "FM_VAULT_PRIVATE_KEY")
		if err != nil {
			return keys, err
		}
		keys.Default = key
	}
	if v := os.Getenv("FM_VAULT_PRIVATE_KEYS"); v != "" {
		var mapping map[string]string
		if err := json.Unmarshal([]byte(v), &mapping); err != nil {
			return keys, fmt.Errorf(`FM_VAULT_PRIVATE_KEYS is not {"<handler>": "<base64>"}`)
		}
		for handler, value := range mapping {
			key, err := parseVaultKey(value, "FM_VAULT_PRIVATE_KEYS["+handler+"]")
			if err != nil {
				return keys, err
			}
			keys.PerHandler[handler] = key
		}
	}
	return keys, nil
}

func (k VaultKeys) forHandler(handler string) *[32]byte {
	if key, ok := k.PerHandler[handler]; ok {
		return key
	}
	return k.Default
}

// Secrets are the opened secrets of one task (ctx.Secrets).
type Secrets struct{ values map[string][]byte }

// Get is the secret's value; false when the step did not ask for it.
func (s *Secrets) Get(name string) (string, bool) {
	v, ok := s.values[name]
	return string(v), ok
}

// Keys are the names of the secrets this task received.
func (s *Secrets) Keys() []string {
	keys := make([]string, 0, len(s.values))
	for k := range s.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Secrets) clear() {
	for name, v := range s.values {
		for i := range v {
			v[i] = 0
		}
		delete(s.values, name)
	}
}

// openTaskSecrets opens every sealed secret of the task or fails with the mesh's code (never a value).
func openTaskSecrets(t *Task, keys VaultKeys) (*Secrets, error) {
	opened := &Secrets{values: map[string][]byte{}}
	if len(t.Vault) == 0 {
		return opened, nil
	}
	names := make([]string, 0, len(t.Vault))
	for name := range t.Vault {
		names = append(names, name)
	}
	sort.Strings(names)
	pool := t.Metadata.Region + "/" + t.Handler.Type
	private := keys.forHandler(t.Handler.Type)
	if private == nil {
		return nil, NonRetryable("VAULT_NOT_CONFIGURED", fmt.Sprintf("task carries sealed secrets (%s) but this worker has no vault private key for %s (FM_VAULT_PRIVATE_KEY)", strings.Join(names, ", "), pool))
	}
	ecdhKey, err := ecdh.X25519().NewPrivateKey(private[:])
	if err != nil {
		return nil, NonRetryable("VAULT_NOT_CONFIGURED", "the vault private key is not an X25519 key")
	}
	var public [32]byte
	copy(public[:], ecdhKey.PublicKey().Bytes())
	for _, name := range names {
		sealed, err := base64.StdEncoding.DecodeString(t.Vault[name])
		value, ok := []byte(nil), false
		if err == nil {
			value, ok = box.OpenAnonymous(nil, sealed, &public, private)
		}
		if !ok {
			opened.clear()
			return nil, NonRetryable("VAULT_SEALED_FOR_ANOTHER_POOL", fmt.Sprintf("secret %q was not sealed for this worker's key of pool %s; it cannot be opened here", name, pool))
		}
		opened.values[name] = value
	}
	t.Vault = nil // the sealed copies are not needed any more
	return opened, nil
}
