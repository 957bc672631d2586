package flowmonkey

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// Run is a worker binary's main: flags and environment as flowmonkey-worker's (--region /
// FM_REGION, --handlers / FM_HANDLERS, --concurrency, --prefix / FM_PREFIX, --nats-url / NATS_URL, NATS_USER and
// NATS_PASSWORD or NATS_CREDS, NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY, FM_VAULT_PRIVATE_KEY(S),
// --capabilities / FM_CAPABILITIES, --hub-domain / FM_HUB_DOMAIN),
// the given handlers, a drain on SIGTERM or SIGINT. Exit 0 after a
// clean drain, 1 when it cannot start, 2 on bad flags.
func Run(handlers ...Handler) {
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	concurrencyDefault, _ := strconv.Atoi(envOr("FM_CONCURRENCY", "8"))
	region := fs.String("region", envOr("FM_REGION", "us-east-1"), "the region whose tasks this worker runs")
	concurrency := fs.Int("concurrency", concurrencyDefault, "tasks run at once")
	prefix := fs.String("prefix", envOr("FM_PREFIX", "fm"), "the mesh's subject prefix")
	natsURL := fs.String("nats-url", envOr("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL")
	capabilities := fs.String("capabilities", envOr("FM_CAPABILITIES", ""), "what this worker offers, comma-separated (gpu,…): steps that `require` them come to it")
	only := fs.String("handlers", envOr("FM_HANDLERS", ""), "comma-separated handler types to serve (default: all the binary defines)")
	hubDomain := fs.String("hub-domain", envOr("FM_HUB_DOMAIN", ""), "the hub's JetStream domain, for a worker connected to a leaf region (the buckets live at the hub)")
	grace := fs.Duration("drain-grace", 30*time.Second, "how long running handlers may finish on SIGTERM")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if *only != "" {
		served, err := selectHandlers(handlers, strings.Split(*only, ","))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		handlers = served
	}
	var caps []string
	for _, c := range strings.Split(*capabilities, ",") {
		if c = strings.TrimSpace(c); c != "" {
			caps = append(caps, c)
		}
	}
	if err := run(Options{Region: *region, Concurrency: *concurrency, Prefix: *prefix, Log: log, Capabilities: caps, HubDomain: *hubDomain}, *natsURL, *grace, handlers); err != nil {
		log.Error("worker failed", "err", err)
		os.Exit(1)
	}
}

func run(opts Options, natsURL string, grace time.Duration, handlers []Handler) error {
	vault, err := VaultKeysFromEnv()
	if err != nil {
		return err
	}
	opts.Vault = vault
	w, err := NewWorker(opts, handlers...)
	if err != nil {
		return err
	}
	conn := []nats.Option{nats.Name("flowmonkey-worker-go " + w.ID()), nats.MaxReconnects(-1)}
	if creds := os.Getenv("NATS_CREDS"); creds != "" {
		conn = append(conn, nats.UserCredentials(creds))
	}
	if user := os.Getenv("NATS_USER"); user != "" {
		conn = append(conn, nats.UserInfo(user, os.Getenv("NATS_PASSWORD")))
	}
	tlsOpts, err := tlsOptionsFromEnv()
	if err != nil {
		return err
	}
	conn = append(conn, tlsOpts...)
	nc, err := nats.Connect(natsURL, conn...)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Start(ctx, nc); err != nil {
		return err
	}
	// The line a supervisor (and the tests) wait for.
	fmt.Println("worker started", w.ID())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	w.Stop(grace)
	return nc.Flush()
}

// selectHandlers keeps the handlers named (as flowmonkey-worker --handlers); naming one the
// binary does not define is an error, not a worker that silently serves less.
func selectHandlers(handlers []Handler, names []string) ([]Handler, error) {
	byType := map[string]Handler{}
	for _, h := range handlers {
		byType[h.Type] = h
	}
	var out []Handler
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		h, ok := byType[name]
		if !ok {
			return nil, fmt.Errorf("--handlers: this binary defines no handler %q", name)
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--handlers names no handler")
	}
	return out, nil
}

// tlsOptionsFromEnv: NATS_TLS_CA verifies the servers, NATS_TLS_CERT and NATS_TLS_KEY are the
// client certificate that servers requiring mutual TLS (the shipped configs) ask for.
func tlsOptionsFromEnv() ([]nats.Option, error) {
	ca, cert, key := os.Getenv("NATS_TLS_CA"), os.Getenv("NATS_TLS_CERT"), os.Getenv("NATS_TLS_KEY")
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("NATS_TLS_CERT and NATS_TLS_KEY go together: a client certificate needs its key")
	}
	var opts []nats.Option
	if ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	if cert != "" {
		opts = append(opts, nats.ClientCert(cert, key))
	}
	return opts, nil
}
