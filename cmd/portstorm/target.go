package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/portstorm/portstorm/target"
)

// targetMessage is what `portstorm target --json` prints: its addresses once listening, its
// counters once stopped. The coordinator reads it when it runs the built-in target as several
// processes.
type targetMessage struct {
	Addrs []string      `json:"addrs,omitempty"`
	Stats *target.Stats `json:"stats,omitempty"`
}

func targetCmd(e *env) *cobra.Command {
	var cfg target.Config
	var listen []string
	var mode string
	var asJSON bool
	c := &cobra.Command{
		Use:   "target",
		Short: "Run the built-in target server until interrupted",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, args []string) error {
			m, err := target.ParseMode(mode)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			cfg.Listen, cfg.Mode = listen, m
			srv, err := target.Start(context.Background(), cfg)
			if err != nil {
				return exitWith(exitInvalid, err)
			}
			enc := json.NewEncoder(e.stdout)
			if asJSON {
				enc.Encode(targetMessage{Addrs: srv.Addrs()})
			} else {
				for _, a := range srv.Addrs() {
					fmt.Fprintf(e.stdout, "portstorm target: %s listening on %s\n", m, a)
				}
			}
			<-e.signals
			srv.Close()
			st := srv.Stats()
			if asJSON {
				enc.Encode(targetMessage{Stats: &st})
				return nil
			}
			fmt.Fprintf(e.stdout, "portstorm target: accepted %d, peak %d, bytes in %d, out %d, idle-closed %d, rejected %d\n",
				st.Accepted, st.Peak, st.BytesIn, st.BytesOut, st.IdleClosed, st.Rejected)
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&listen, "listen", []string{"127.0.0.1:0"}, "listen address (repeatable)")
	f.StringVar(&mode, "mode", "echo", "echo, sink, hold, close or rst")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 60*time.Second, "close connections silent for this long")
	f.IntVar(&cfg.MaxFrame, "max-frame", 64<<10, "largest read echoed at once, bytes")
	f.BoolVar(&cfg.AllowRemote, "allow-remote", false, "permit listening outside loopback")
	f.BoolVar(&cfg.ReusePort, "reuseport", false, "set SO_REUSEPORT so several target processes share the listeners")
	f.IntVar(&cfg.PortBelow, "port-below", 0, "for port 0, listen on the highest free port below this one (keeps the target out of the clients' range)")
	f.BoolVar(&cfg.CloseFirst, "close-first", false, "close every connection first (the server side of close: server)")
	f.Int64Var(&cfg.CloseAfter, "close-after", 0, "with --close-first, close after this many bytes were read (and echoed)")
	f.IntVar(&cfg.MaxConns, "max-conns", 0, "reset connections beyond this many open at once (0: no cap)")
	f.BoolVar(&asJSON, "json", false, "print the listening addresses and the final counters as JSON lines")
	return c
}
