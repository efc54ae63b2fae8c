package plan

import (
	"encoding/hex"
	"fmt"
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
	DefaultMaxResponse    = Size(1 << 20)
	DefaultClose          = "fin"
	DefaultModel          = "concurrency"
	DefaultMaxInFlight    = 20000
	DefaultOnSaturation   = "queue"
	DefaultGracefulStop   = Duration(5 * time.Second)
	DefaultOutputDir      = "results"
	DefaultInterval       = Duration(time.Second)

	DefaultSearchGrowth    = 2.0
	DefaultSearchProbe     = Duration(10 * time.Second)
	DefaultSearchSettle    = Duration(2 * time.Second)
	DefaultSearchTolerance = Percent(0.05)
	DefaultSearchMaxProbes = 20
	DefaultSearchMaxTime   = Duration(10 * time.Minute)
	// DefaultConfirmFactor makes the confirming probe this many times a probe's length.
	DefaultConfirmFactor = 3

	DefaultBackoffAfter   = 3
	DefaultBackoff        = Duration(10 * time.Millisecond)
	DefaultMaxBackoff     = Duration(time.Second)
	DefaultMaxFailRate    = 1000.0
	DefaultGiveUpAfter    = Duration(2 * time.Second)
	DefaultGiveUpAttempts = 1000
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
		setDefault(&b.Address, "127.0.0.1")
	}
	setDefault(&p.Source.Ports.Strategy, DefaultStrategy)

	c := &p.Connection
	setDefault(&c.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&c.IOTimeout, DefaultIOTimeout)
	setDefault(&c.Close, DefaultClose)
	if s := c.Send; s != nil {
		setDefault(&s.Protocol, "raw")
		setDefault(&s.Count, DefaultSendCount)
		setDefault(&s.MaxResponse, DefaultMaxResponse)
		switch s.Protocol {
		case "raw", "websocket":
			if s.Data == "" && s.Hex == "" && s.File == "" {
				setDefault(&s.Bytes, DefaultSendBytes)
			}
			// Only the built-in echo target is known to answer with what it was sent.
			echoMode := "echo"
			if s.Protocol == "websocket" {
				echoMode = "websocket"
			}
			expect := "none"
			switch b := p.Target.Builtin; {
			case s.Reply != "":
				expect = "reply"
			case b != nil && b.Mode == echoMode:
				expect = "echo"
			}
			setDefault(&s.Expect, expect)
			if s.Protocol == "websocket" {
				if s.WebSocket == nil {
					s.WebSocket = &WebSocket{}
				}
				setDefault(&s.WebSocket.Path, "/")
				message := "text"
				if s.Hex != "" || s.File != "" {
					message = "binary"
				}
				setDefault(&s.WebSocket.Message, message)
			}
			s.File = p.relative(s.File)
		case "http":
			if s.HTTP == nil {
				s.HTTP = &HTTPRequest{}
			}
			setDefault(&s.HTTP.Method, "GET")
			setDefault(&s.HTTP.Path, "/")
		case "redis":
			if s.Redis == nil {
				s.Redis = &RedisCommand{}
			}
			if len(s.Redis.Command) == 0 {
				s.Redis.Command = []string{"PING"}
			}
			if len(s.Redis.Command) == 1 && strings.EqualFold(s.Redis.Command[0], "PING") {
				setDefault(&s.Redis.Reply, "PONG")
			}
		}
	}
	if t := c.TLS; t != nil {
		t.CAFile = p.relative(t.CAFile)
	}
	if f := &c.OnConnectFailure; !f.Measure {
		setDefault(&f.BackoffAfter, DefaultBackoffAfter)
		if f.Backoff == 0 {
			// A max_backoff under the default backoff is the backoff too: a pause that never doubles.
			f.Backoff = DefaultBackoff
			if f.MaxBackoff != 0 {
				f.Backoff = min(f.Backoff, f.MaxBackoff)
			}
		}
		setDefault(&f.MaxBackoff, max(DefaultMaxBackoff, f.Backoff))
		setDefault(&f.MaxFailRate, DefaultMaxFailRate)
		setDefault(&f.GiveUpAfter, DefaultGiveUpAfter)
		setDefault(&f.GiveUpAttempts, DefaultGiveUpAttempts)
	}
	if b := p.Target.Builtin; b != nil && b.Mode == "http" {
		setDefault(&b.HTTPStatus, 200)
	}

	l := &p.Load
	if sr := p.Search; sr != nil {
		// The dimension and the load model name each other: either one gives the other.
		switch {
		case sr.Dimension == "" && l.Model == "arrival":
			sr.Dimension = "arrival_rate"
		case sr.Dimension == "":
			sr.Dimension = "concurrency"
		case l.Model == "":
			l.Model = ModelOf(sr.Dimension)
		}
		setDefault(&sr.Growth, DefaultSearchGrowth)
		setDefault(&sr.Probe, DefaultSearchProbe)
		setDefault(&sr.Settle, DefaultSearchSettle)
		setDefault(&sr.Confirm, DefaultConfirmFactor*sr.Probe)
		setDefault(&sr.Tolerance, DefaultSearchTolerance)
		setDefault(&sr.MaxProbes, DefaultSearchMaxProbes)
		setDefault(&sr.MaxTime, DefaultSearchMaxTime)
	}
	setDefault(&l.Model, DefaultModel)
	setDefault(&l.MaxInFlight, DefaultMaxInFlight)
	setDefault(&l.OnSaturation, DefaultOnSaturation)
	setDefault(&l.GracefulStop, DefaultGracefulStop)

	setDefault(&p.Output.Dir, DefaultOutputDir)
	setDefault(&p.Output.Interval, DefaultInterval)
}

// ModelOf is the load model a search dimension runs under ("" for request_rate, which runs under
// either, and for an unknown dimension).
func ModelOf(dimension string) string {
	switch dimension {
	case "arrival_rate":
		return "arrival"
	case "concurrency":
		return "concurrency"
	}
	return ""
}

// relative resolves a path given in the plan against the plan's directory, so that a plan
// refers to its own files wherever it is run from (and worker processes get the same file).
func (p *Plan) relative(path string) string {
	if path == "" || filepath.IsAbs(path) || p.File == "" {
		return path
	}
	return filepath.Join(filepath.Dir(p.File), path)
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Payload is the raw request the plan gives as data, hex or file, or nil when the request is
// generated (bytes of random data).
func (s *Send) Payload() ([]byte, error) {
	switch {
	case s.Data != "":
		return []byte(s.Data), nil
	case s.Hex != "":
		b, err := hex.DecodeString(strings.Join(strings.Fields(s.Hex), ""))
		if err != nil {
			return nil, fmt.Errorf("connection.send.hex: %w", err)
		}
		return b, nil
	case s.File != "":
		b, err := ReadFile(s.File, int64(MaxSendBytes))
		if err != nil {
			return nil, fmt.Errorf("connection.send.file: %w", err)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("connection.send.file: want 1B to %s of request, %s holds %d bytes", MaxSendBytes, s.File, len(b))
		}
		return b, nil
	}
	return nil, nil
}

// RequestBytes is the size of one raw request.
func (s *Send) RequestBytes() (int64, error) {
	b, err := s.Payload()
	if err != nil || b == nil {
		return int64(s.Bytes), err
	}
	return int64(len(b)), nil
}
