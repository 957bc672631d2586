package flowmonkey

import "testing"

func TestTLSOptionsFromEnv(t *testing.T) {
	t.Setenv("NATS_TLS_CA", "")
	t.Setenv("NATS_TLS_CERT", "")
	t.Setenv("NATS_TLS_KEY", "")
	if opts, err := tlsOptionsFromEnv(); err != nil || len(opts) != 0 {
		t.Fatalf("no TLS settings: want no options, got %d (%v)", len(opts), err)
	}
	t.Setenv("NATS_TLS_CA", "/certs/ca.pem")
	t.Setenv("NATS_TLS_CERT", "/certs/client.pem")
	t.Setenv("NATS_TLS_KEY", "/certs/client-key.pem")
	if opts, err := tlsOptionsFromEnv(); err != nil || len(opts) != 2 {
		t.Fatalf("CA and client certificate: want 2 options, got %d (%v)", len(opts), err)
	}
	t.Setenv("NATS_TLS_KEY", "")
	if _, err := tlsOptionsFromEnv(); err == nil {
		t.Fatal("a certificate without its key must be refused")
	}
}

func TestSelectHandlers(t *testing.T) {
	all := []Handler{Define("a", nil), Define("b", nil), Define("c", nil)}
	got, err := selectHandlers(all, []string{"c", " a"})
	if err != nil || len(got) != 2 || got[0].Type != "c" || got[1].Type != "a" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := selectHandlers(all, []string{"a", "nosuch"}); err == nil {
		t.Fatal("a handler the binary does not define must be an error")
	}
}
