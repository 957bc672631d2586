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
