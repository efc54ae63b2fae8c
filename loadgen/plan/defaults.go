package plan

import (
	"path/filepath"
	"strings"
	"time"
)

// Default values, for fields whose zero value means "use the default".
const (
	DefaultMode           = "echo"
	DefaultListeners      = 1
	DefaultIdleTimeout    = Duration(60 * time.Second)
	DefaultMaxFrame       = Size(64 << 10)
	DefaultStrategy       = "kernel"
	DefaultConnectTimeout = Duration(3 * time.Second)
	DefaultIOTimeout      = Duration(5 * time.Second)
	DefaultSendBytes      = Size(64)
	DefaultSendCount      = 1
	DefaultClose          = "fin"
	DefaultModel          = "concurrency"
	DefaultMaxInFlight    = 20000
	DefaultOnSaturation   = "queue"
	DefaultGracefulStop   = Duration(5 * time.Second)
	DefaultOutputDir      = "results"
	DefaultInterval       = Duration(time.Second)
)

// Defaults fills every unset field that has a default. It keeps Version as given (a missing version
// stays an error for Validate) and adds nothing optional: no built-in target, no requests, no
// baseline unless the plan asked for them. The name defaults to the file's base name without its
// extension.
func (p *Plan) Defaults() {
	if p.Name == "" && p.File != "" {
		base := filepath.Base(p.File)
		p.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	if b := p.Target.Builtin; b != nil {
		setDefault(&b.Mode, DefaultMode)
		setDefault(&b.Listeners, DefaultListeners)
		setDefault(&b.IdleTimeout, DefaultIdleTimeout)
		setDefault(&b.MaxFrame, DefaultMaxFrame)
	}
	setDefault(&p.Source.Ports.Strategy, DefaultStrategy)

	c := &p.Connection
	setDefault(&c.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&c.IOTimeout, DefaultIOTimeout)
	setDefault(&c.Close, DefaultClose)
	if s := c.Send; s != nil {
		setDefault(&s.Bytes, DefaultSendBytes)
		setDefault(&s.Count, DefaultSendCount)
		// Only the built-in echo target is known to answer with what it was sent.
		expect := "none"
		if b := p.Target.Builtin; b != nil && b.Mode == "echo" {
			expect = "echo"
		}
		setDefault(&s.Expect, expect)
	}

	l := &p.Load
	setDefault(&l.Model, DefaultModel)
	setDefault(&l.MaxInFlight, DefaultMaxInFlight)
	setDefault(&l.OnSaturation, DefaultOnSaturation)
	setDefault(&l.GracefulStop, DefaultGracefulStop)

	setDefault(&p.Output.Dir, DefaultOutputDir)
	setDefault(&p.Output.Interval, DefaultInterval)
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
