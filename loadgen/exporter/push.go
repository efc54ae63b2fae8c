package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"
)

// PushConfig says where and how a run's figures are pushed to a Prometheus Pushgateway
// (--metrics-push). The group pushed to is job plus the grouping labels: plan (the plan's name)
// and Grouping (a segment's "segment", the user's --metrics-push-label); a push replaces what the
// group held (HTTP PUT).
type PushConfig struct {
	// URL is the Pushgateway's base URL, like http://pushgateway:9091; user:password@ in it is
	// sent as HTTP basic authentication.
	URL string
	// Job is the job label (default "portstorm").
	Job string
	// Grouping are further grouping labels, in order, each {name, value}.
	Grouping [][2]string
	// Every, when positive, pushes also every Every of run time (at the first interval snapshot
	// past each multiple); 0 pushes only at the end.
	Every time.Duration
	// Timeout bounds one push (default 10s).
	Timeout time.Duration
	// Client sends the pushes (default a client of its own).
	Client push.HTTPDoer
	// Warn receives the first failure of the pushes made during the run (the final push's error is
	// Finish's); nil ignores them.
	Warn func(error)
}

// DefaultJob is the job label of pushes that do not name one.
const DefaultJob = "portstorm"

// CheckPush checks a Pushgateway URL and grouping labels as given on the command line.
func CheckPush(c PushConfig) error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--metrics-push %q: want the Pushgateway's http(s) URL, like http://127.0.0.1:9091", c.URL)
	}
	for _, g := range c.Grouping {
		switch {
		case !labelName(g[0]):
			return fmt.Errorf("--metrics-push-label %s=%s: %q is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)", g[0], g[1], g[0])
		case g[0] == "job" || g[0] == "plan":
			return fmt.Errorf("--metrics-push-label %s=%s: %q is set by portstorm (use --metrics-push-job for the job)", g[0], g[1], g[0])
		case strings.HasPrefix(g[0], "__"):
			return fmt.Errorf("--metrics-push-label %s=%s: names starting with __ are reserved", g[0], g[1])
		case g[1] == "":
			return fmt.Errorf("--metrics-push-label %s=: want a value", g[0])
		}
	}
	return nil
}

func labelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// pushes push an exporter's figures: during the run from a goroutine of its own (a slow
// Pushgateway never holds up the run's snapshots), and once more, synchronously, at its end.
type pushes struct {
	e     *Exporter
	cfg   PushConfig
	next  time.Duration // run time of the next interval push
	kick  chan struct{} // a push is due (1 slot: pushes due while one runs coalesce)
	done  chan struct{} // the goroutine has ended
	ended bool          // kick is closed (under e.mu)
	warn  sync.Once
}

// StartPush makes the exporter push to a Pushgateway: every cfg.Every of run time when set, and at
// the end (PushFinal). Call it once, before the run's first snapshot.
func (e *Exporter) StartPush(cfg PushConfig) error {
	if err := CheckPush(cfg); err != nil {
		return err
	}
	if cfg.Job == "" {
		cfg.Job = DefaultJob
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	p := &pushes{e: e, cfg: cfg, next: cfg.Every, kick: make(chan struct{}, 1), done: make(chan struct{})}
	e.mu.Lock()
	e.pushes = p
	e.mu.Unlock()
	go p.loop()
	return nil
}

// interval is called under e.mu after each snapshot, with the run time it reached.
func (p *pushes) interval(elapsed time.Duration) {
	if p.cfg.Every <= 0 || p.ended || elapsed < p.next {
		return
	}
	for p.next <= elapsed {
		p.next += p.cfg.Every
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *pushes) loop() {
	defer close(p.done)
	for range p.kick {
		if err := p.e.push(context.Background(), p.cfg); err != nil && p.cfg.Warn != nil {
			p.warn.Do(func() { p.cfg.Warn(err) })
		}
	}
}

// PushFinal stops the interval pushes and pushes the figures as they stand (after Finish: the
// run's final figures), bounded by ctx and the push timeout. Without StartPush it does nothing.
func (e *Exporter) PushFinal(ctx context.Context) error {
	e.mu.Lock()
	p := e.pushes
	if p == nil || p.ended {
		e.mu.Unlock()
		return nil
	}
	p.ended = true
	close(p.kick)
	e.mu.Unlock()
	<-p.done
	return e.push(ctx, p.cfg)
}

// push sends the figures once (PUT: they replace the group's).
func (e *Exporter) push(ctx context.Context, c PushConfig) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	u, err := url.Parse(c.URL)
	if err != nil {
		return err
	}
	var user *url.Userinfo
	user, u.User = u.User, nil
	ps := push.New(u.String(), c.Job).Gatherer(e.pushReg).Client(c.Client).
		Format(expfmt.NewFormat(expfmt.TypeTextPlain)).Grouping("plan", e.name)
	for _, g := range c.Grouping {
		ps = ps.Grouping(g[0], g[1])
	}
	if user != nil {
		pw, _ := user.Password()
		ps = ps.BasicAuth(user.Username(), pw)
	}
	if err := ps.PushContext(ctx); err != nil {
		return fmt.Errorf("pushing to %s: %w", redact(u), err)
	}
	return nil
}

// redact is a URL as it may be shown (the password is never in u: push strips the user).
func redact(u *url.URL) string { return u.Redacted() }

// ErrLingerCut is Linger's answer when ctx ended the linger before its time.
var ErrLingerCut = errors.New("the linger was cut short")

// wait waits d or until ctx ends, whichever comes first; ErrLingerCut when ctx did.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ErrLingerCut
	}
}

// Linger keeps the endpoint serving for d after the run (the final figures stay scrapable: a run
// shorter than the scrape interval is still scraped), or until ctx ends (a signal), then closes it.
// It returns ErrLingerCut when ctx ended it early, else Close's error.
func (s *Server) Linger(ctx context.Context, d time.Duration) error {
	err := wait(ctx, d)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}
