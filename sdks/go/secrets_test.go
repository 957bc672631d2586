package flowmonkey

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/box"
)

func sealFor(t *testing.T, public *[32]byte, value string) string {
	t.Helper()
	sealed, err := box.SealAnonymous(nil, []byte(value), public, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sealed)
}

func TestOpenTaskSecrets(t *testing.T) {
	public, private, _ := box.GenerateKey(rand.Reader)
	otherPublic, _, _ := box.GenerateKey(rand.Reader)
	task := func(vault map[string]string) *Task {
		tk := &Task{Vault: vault}
		tk.Handler.Type, tk.Metadata.Region = "pay", "us-east-1"
		return tk
	}
	keys := VaultKeys{Default: private}

	tk := task(map[string]string{"token": sealFor(t, public, "s3cret"), "other": sealFor(t, public, "two")})
	secrets, err := openTaskSecrets(tk, keys)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := secrets.Get("token"); !ok || v != "s3cret" || strings.Join(secrets.Keys(), ",") != "other,token" || tk.Vault != nil {
		t.Fatalf("opened %q %v %v; sealed copies %v", v, ok, secrets.Keys(), tk.Vault)
	}

	_, err = openTaskSecrets(task(map[string]string{"token": sealFor(t, public, "s3cret"), "foreign": sealFor(t, otherPublic, "theirs")}), keys)
	var failure *Failure
	if !errors.As(err, &failure) || failure.Code != "VAULT_SEALED_FOR_ANOTHER_POOL" || strings.Contains(failure.Message, "theirs") {
		t.Fatalf("a secret sealed for another pool: %v", err)
	}
	if _, err := openTaskSecrets(task(map[string]string{"token": "x"}), VaultKeys{}); !errors.As(err, &failure) || failure.Code != "VAULT_NOT_CONFIGURED" {
		t.Fatalf("no key: %v", err)
	}
}
