// Command prometheus exports kmsdb's metrics to Prometheus through the
// OpenTelemetry Prometheus exporter, while it keeps a MySQL or MariaDB
// connection alive with the credentials of a KMS secret:
//
//	connector.SetDefaultObserver(kmsdbotel.NewObserver(kmsdbotel.WithMeterProvider(mp)))
//
// It is a module of its own, so that neither the library nor kmsdbotel
// depends on an SDK or an exporter. The secret source is configured as for
// examples/mysql (environment variables or ./secretsmanager.properties):
//
//	go run . -secret db-secret -dsn 'tcp(127.0.0.1:3306)/app' -listen 127.0.0.1:9464
//	curl -s 127.0.0.1:9464/metrics | grep kmsdb_
//
// docs/observability.md lists the metrics and the alerts to set on them.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/kmsdb/kmsdb/connector"
	"github.com/kmsdb/kmsdb/drivers/mysqlkms"
	"github.com/kmsdb/kmsdb/kmsdbotel"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "prometheus:", err)
		os.Exit(1)
	}
}

// metrics builds the exporter and kmsdb's Observer on it: the Observer to
// install, the /metrics handler, and the shutdown of the meter provider.
func metrics() (connector.Observer, http.Handler, func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return connector.Observer{}, nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	o := kmsdbotel.NewObserver(kmsdbotel.WithMeterProvider(mp), kmsdbotel.WithSecretName(kmsdbotel.SecretNameHashed))
	return o, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), mp.Shutdown, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("prometheus", flag.ContinueOnError)
	secret := fs.String("secret", "", "name of the KMS secret holding the database account")
	dsn := fs.String("dsn", "tcp(127.0.0.1:3306)/", "MySQL DSN without user and password")
	listen := fs.String("listen", "127.0.0.1:9464", "address of the /metrics endpoint")
	every := fs.Duration("every", 5*time.Second, "how often to open a connection and ping")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("-secret is required")
	}
	o, handler, shutdown, err := metrics()
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.Background()) }()
	connector.SetDefaultObserver(o) // every connector, pool and the default cache

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", ln.Addr())

	db := sql.OpenDB(mysqlkms.NewConnector(*secret, mysqlkms.WithDSN(*dsn)))
	defer db.Close()
	db.SetMaxIdleConns(0) // every ping logs in, so rotations show in the metrics
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err != nil {
			fmt.Fprintln(stdout, "ping:", err) // a *connector.Error: never a password
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
