package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/loadgen/spec"
	"github.com/portstorm/portstorm/target"
)

// selfSignedHosts are always in a --tls certificate: the names a client on this machine uses.
var selfSignedHosts = []string{"localhost", "127.0.0.1", "::1"}

// selfSignedValidity outlasts any run; the certificate lives only as long as the process anyway.
const selfSignedValidity = 365 * 24 * time.Hour

func targetCmd(e *env) *cobra.Command {
	var cfg target.Config
	var listen []string
	var mode string
	var asJSON bool
	var selfSigned bool
	var certFile, keyFile string
	var configStdin bool
	var procs int
	c := &cobra.Command{
		Use:   "target",
		Short: "Run the built-in target server until interrupted",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			if configStdin {
				return e.targetFromStdin(asJSON)
			}
			m, err := target.ParseMode(mode)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			if c.Flags().Changed("http-status") && m != target.ModeHTTP {
				return exitWith(exitInvalid, fmt.Errorf("--http-status applies to --mode http, not %s", m))
			}
			if c.Flags().Changed("header-timeout") && m != target.ModeHTTP {
				return exitWith(exitInvalid, fmt.Errorf("--header-timeout applies to --mode http, not %s", m))
			}
			if err := checkTargetFlags(cfg, listen, procs); err != nil {
				return exitWith(exitInvalid, err)
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(e.targetProcs(procs)))
			cfg.Listen, cfg.Mode = listen, m
			tlsConf, hosts, certPEM, err := targetTLS(selfSigned, certFile, keyFile, listen)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			cfg.TLS = tlsConf
			var caFile string
			if certPEM != nil {
				if caFile, err = writeCAFile(certPEM); err != nil {
					return exitWith(exitInvalid, err)
				}
				defer os.Remove(caFile)
			}
			return e.serveTarget(cfg, asJSON, caFile, hosts)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&listen, "listen", []string{"127.0.0.1:0"}, "listen address (repeatable)")
	f.StringVar(&mode, "mode", "echo", modeChoices())
	_ = c.RegisterFlagCompletionFunc("mode", completeWords(modeNames())) // fails only for an unknown flag
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 60*time.Second, "close connections silent for this long (and TLS handshakes stalled for this long)")
	f.IntVar(&cfg.MaxFrame, "max-frame", target.DefaultMaxFrame, "largest read echoed at once, bytes (at most 16 MiB)")
	f.DurationVar(&cfg.HeaderTimeout, "header-timeout", target.DefaultHeaderTimeout, "with --mode http, close a connection whose request head is not complete this long after its first byte")
	f.BoolVar(&cfg.AllowRemote, "allow-remote", false, "permit listening outside loopback")
	f.BoolVar(&cfg.ReusePort, "reuseport", false, "set SO_REUSEPORT so several target processes share the listeners")
	f.IntVar(&cfg.PortBelow, "port-below", 0, "for port 0, listen on the highest free port below this one (keeps the target out of the clients' range)")
	f.BoolVar(&cfg.CloseFirst, "close-first", false, "close every connection first (the server side of close: server)")
	f.Int64Var(&cfg.CloseAfter, "close-after", 0, "with --close-first, close after this many bytes were read (and echoed)")
	f.IntVar(&cfg.MaxConns, "max-conns", 0, "reset connections beyond this many open at once (0: no cap)")
	f.IntVar(&cfg.HTTPStatus, "http-status", 200, "with --mode http, the status of every answer (200-599)")
	f.BoolVar(&selfSigned, "tls", false, "serve TLS with a self-signed certificate made at start for localhost, 127.0.0.1, ::1 and the --listen hosts; its PEM is written to a temporary file for clients' ca_file")
	f.StringVar(&certFile, "tls-cert", "", "serve TLS with this PEM certificate chain (with --tls-key)")
	f.StringVar(&keyFile, "tls-key", "", "PEM private key of --tls-cert")
	f.IntVar(&procs, "procs", 0, "GOMAXPROCS of the target: the cores it may use at once (0: GOMAXPROCS from the environment if set, else half the cores, leaving the other half to a client on the same host)")
	f.BoolVar(&asJSON, "json", false, "print the listening addresses and the final counters as JSON lines")
	// A coordinator starts its target processes with this: the configuration it compiled, as JSON
	// on stdin, instead of flags parsed back.
	f.BoolVar(&configStdin, "config-stdin", false, "read the whole configuration as JSON from stdin (internal)")
	f.MarkHidden("config-stdin")
	return c
}

// targetFromStdin serves the configuration a coordinator wrote on stdin (spec.TargetProcess).
func (e *env) targetFromStdin(asJSON bool) error {
	b, err := io.ReadAll(io.LimitReader(e.stdin, spec.MaxTargetProcess+1))
	if err == nil && len(b) > spec.MaxTargetProcess {
		err = fmt.Errorf("more than %d bytes", spec.MaxTargetProcess)
	}
	var tp spec.TargetProcess
	if err == nil {
		err = json.Unmarshal(b, &tp)
	}
	if err != nil {
		return exitWith(exitInvalid, fmt.Errorf("--config-stdin: %w", err))
	}
	cfg := tp.Config
	if tp.CertPEM != nil {
		if cfg.TLS, err = target.TLSConfig(tp.CertPEM, tp.KeyPEM); err != nil {
			return exitWith(exitInvalid, fmt.Errorf("--config-stdin: %w", err))
		}
	}
	return e.serveTarget(cfg, asJSON, "", nil)
}

// serveTarget runs the target until a signal, printing its addresses and counters.
func (e *env) serveTarget(cfg target.Config, asJSON bool, caFile string, hosts []string) error {
	m := cfg.Mode
	srv, err := target.Start(context.Background(), cfg)
	if err != nil {
		return exitWith(exitInvalid, err)
	}
	enc := json.NewEncoder(e.stdout)
	if asJSON {
		enc.Encode(target.Message{Addrs: srv.Addrs(), CAFile: caFile})
	} else {
		what := string(m)
		if cfg.TLS != nil {
			what += " over TLS"
		}
		for _, a := range srv.Addrs() {
			fmt.Fprintf(e.stdout, "portstorm target: %s listening on %s\n", what, a)
		}
		fmt.Fprintf(e.stdout, "portstorm target: GOMAXPROCS %d of %d cores (--procs)\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
		if caFile != "" {
			fmt.Fprintf(e.stdout, "portstorm target: self-signed certificate for %s written to %s (use it as ca_file; removed when the target stops)\n",
				strings.Join(hosts, ", "), caFile)
		}
	}
	<-e.signals
	srv.Close()
	st := srv.Stats()
	if asJSON {
		enc.Encode(target.Message{Stats: &st})
		return nil
	}
	fmt.Fprintf(e.stdout, "portstorm target: accepted %d, peak %d, bytes in %d, out %d, idle-closed %d, rejected %d, "+
		"requests %d, bad requests %d, tls handshakes %d, tls failed %d\n",
		st.Accepted, st.Peak, st.BytesIn, st.BytesOut, st.IdleClosed, st.Rejected,
		st.Requests, st.BadRequests, st.TLSHandshakes, st.TLSFailed)
	return nil
}

// targetProcs is the GOMAXPROCS of a standalone target: --procs when set, else the environment's
// GOMAXPROCS when set (a coordinator sets it for its target processes, see spec.CPUShares), else
// target.DefaultProcs.
func (e *env) targetProcs(flag int) int {
	if flag > 0 {
		return flag
	}
	for _, kv := range e.environ {
		if k, v, _ := strings.Cut(kv, "="); k == "GOMAXPROCS" && v != "" {
			return runtime.GOMAXPROCS(0) // the runtime has read it
		}
	}
	return target.DefaultProcs(runtime.NumCPU())
}

// checkTargetFlags refuses values target.Start would refuse, in the flags' own names: its errors name
// Config's fields, which a command-line user never sees.
func checkTargetFlags(cfg target.Config, listen []string, procs int) error {
	var errs []error
	if procs < 0 || procs > target.MaxProcs {
		errs = append(errs, fmt.Errorf("--procs %d: want 0 (the default) or 1 to %d", procs, target.MaxProcs))
	}
	if cfg.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--idle-timeout %v: want a positive duration (every read needs a deadline)", cfg.IdleTimeout))
	}
	if cfg.HeaderTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--header-timeout %v: want a positive duration", cfg.HeaderTimeout))
	}
	if cfg.MaxFrame < 1 || cfg.MaxFrame > target.MaxFrameLimit {
		errs = append(errs, fmt.Errorf("--max-frame %d: want 1 to %d bytes (16 MiB)", cfg.MaxFrame, target.MaxFrameLimit))
	}
	if cfg.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("--max-conns %d: want 0 (no cap) or a positive number", cfg.MaxConns))
	}
	if cfg.CloseAfter < 0 {
		errs = append(errs, fmt.Errorf("--close-after %d: want 0 or more bytes", cfg.CloseAfter))
	}
	if cfg.HTTPStatus < 200 || cfg.HTTPStatus > 599 {
		errs = append(errs, fmt.Errorf("--http-status %d: want 200 to 599", cfg.HTTPStatus))
	}
	if cfg.PortBelow < 0 || cfg.PortBelow > 65535 {
		errs = append(errs, fmt.Errorf("--port-below %d: want 0 (off) or a port up to 65535", cfg.PortBelow))
	}
	for _, a := range listen {
		host, _, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--listen %q: want host:port (%v)", a, err))
		case !cfg.AllowRemote && !target.IsLoopbackHost(host):
			errs = append(errs, fmt.Errorf("--listen %q is not a loopback address (127.0.0.0/8, ::1, localhost): add --allow-remote to listen there", a))
		}
	}
	return errors.Join(errs...)
}

// modeChoices is the --mode help: every mode, in target's order.
func modeChoices() string {
	names := modeNames()
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// modeNames are the target's modes, in its order: --mode's words.
func modeNames() []string {
	var names []string
	for _, m := range target.Modes() {
		names = append(names, string(m))
	}
	return names
}

// targetTLS makes the TLS configuration the flags ask for, or nil for none. With --tls it also
// returns the certificate's hosts and PEM, for the file clients trust.
func targetTLS(selfSigned bool, certFile, keyFile string, listen []string) (conf *tls.Config, hosts []string, certPEM []byte, err error) {
	switch {
	case selfSigned && (certFile != "" || keyFile != ""):
		return nil, nil, nil, errors.New("--tls makes a certificate; it cannot be combined with --tls-cert or --tls-key")
	case certFile != "" && keyFile == "":
		return nil, nil, nil, errors.New("--tls-cert needs --tls-key")
	case keyFile != "" && certFile == "":
		return nil, nil, nil, errors.New("--tls-key needs --tls-cert")
	case certFile != "":
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--tls-cert: %w", err)
		}
		keyPEM, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--tls-key: %w", err)
		}
		conf, err := target.TLSConfig(certPEM, keyPEM)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
		}
		return conf, nil, nil, nil
	case !selfSigned:
		return nil, nil, nil, nil
	}
	hosts = slices.Clone(selfSignedHosts)
	for _, addr := range listen {
		// A specific host a client may dial (with --allow-remote) must be in the certificate too;
		// a wildcard names no host to verify. A bad address is left for target.Start to report.
		host, _, err := net.SplitHostPort(addr)
		if ip, perr := netip.ParseAddr(host); err != nil || host == "" || perr == nil && ip.IsUnspecified() {
			continue
		}
		if !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	certPEM, keyPEM, err := target.SelfSigned(hosts, selfSignedValidity)
	if err != nil {
		return nil, nil, nil, err
	}
	conf, err = target.TLSConfig(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, err
	}
	return conf, hosts, certPEM, nil
}

// writeCAFile writes certPEM to a new temporary file and returns its path. The key is never
// written: it lives only in this process.
func writeCAFile(certPEM []byte) (string, error) {
	f, err := os.CreateTemp("", "portstorm-target-*.pem")
	if err != nil {
		return "", fmt.Errorf("--tls: writing the certificate: %w", err)
	}
	_, err = f.Write(certPEM)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("--tls: writing the certificate to %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}
