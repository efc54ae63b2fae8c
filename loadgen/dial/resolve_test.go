package dial

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// fakeResolver answers from a table and counts the lookups per name. It never touches the network,
// so addresses outside loopback can appear in tests without anything being dialled.
type fakeResolver struct {
	t       *testing.T
	answers map[string][]netip.Addr
	errs    map[string]error

	mu    sync.Mutex
	count map[string]int
}

func (f *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := netip.ParseAddr(host); err == nil {
		f.t.Errorf("Resolve looked up the address literal %q", host)
	}
	if network != "ip" {
		f.t.Errorf("LookupNetIP(%q, %q): want network \"ip\"", network, host)
	}
	if f.count == nil {
		f.count = map[string]int{}
	}
	f.count[host]++
	if err, ok := f.errs[host]; ok {
		return nil, err
	}
	ans, ok := f.answers[host]
	if !ok {
		f.t.Errorf("unexpected lookup of %q", host)
		return nil, errNoSuchHost
	}
	return ans, nil
}

var errNoSuchHost = errors.New("no such host (fake)")

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func TestResolve(t *testing.T) {
	answers := map[string][]netip.Addr{
		"localhost":      addrs("127.0.0.1"),
		"remote.test":    addrs("192.0.2.7"),
		"multi.test":     addrs("192.0.2.8", "127.0.0.1"),
		"multi-lo.test":  addrs("127.0.0.2", "192.0.2.9"),
		"mapped.test":    addrs("::ffff:127.0.0.3"),
		"empty.test":     {},
		"invalid.test":   {{}},
		"v6-remote.test": addrs("2001:db8::1"),
	}
	errs := map[string]error{"broken.test": errNoSuchHost}

	tests := []struct {
		name        string
		targets     []string
		allowRemote bool
		want        []string // destinations, in order
		wantIs      error    // errors.Is target; nil with wantErr means any error
		wantErr     bool
		wantMsg     []string // the error message must name these (what the user must change)
		lookups     map[string]int
	}{
		{name: "IPv4 loopback literal", targets: []string{"127.0.0.1:80"}, want: []string{"127.0.0.1:80"}},
		{name: "anywhere in 127.0.0.0/8", targets: []string{"127.9.9.9:80"}, want: []string{"127.9.9.9:80"}},
		{name: "IPv6 loopback literal", targets: []string{"[::1]:80"}, want: []string{"[::1]:80"}},
		{name: "IPv4-mapped loopback is unmapped", targets: []string{"[::ffff:127.0.0.1]:80"}, want: []string{"127.0.0.1:80"}},
		{name: "localhost through the resolver", targets: []string{"localhost:80"}, want: []string{"127.0.0.1:80"},
			lookups: map[string]int{"localhost": 1}},
		{name: "resolved IPv4-mapped loopback is unmapped", targets: []string{"mapped.test:80"}, want: []string{"127.0.0.3:80"},
			lookups: map[string]int{"mapped.test": 1}},
		{name: "name resolving outside loopback is refused", targets: []string{"remote.test:80"},
			wantIs: ErrRemote, wantMsg: []string{`"remote.test:80"`, "192.0.2.7", "allow_remote: true", "--allow-remote"},
			lookups: map[string]int{"remote.test": 1}},
		{name: "name resolving outside loopback with allowRemote", targets: []string{"remote.test:80"}, allowRemote: true,
			want: []string{"192.0.2.7:80"}, lookups: map[string]int{"remote.test": 1}},
		{name: "private literal is refused", targets: []string{"10.0.0.1:80"},
			wantIs: ErrRemote, wantMsg: []string{`"10.0.0.1:80"`, "allow_remote", "--allow-remote"}},
		{name: "IPv4-mapped private literal is refused", targets: []string{"[::ffff:10.0.0.1]:80"}, wantIs: ErrRemote},
		{name: "IPv6 literal outside loopback is refused", targets: []string{"[2001:db8::1]:443"}, wantIs: ErrRemote},
		{name: "IPv6 name outside loopback with allowRemote", targets: []string{"v6-remote.test:443"}, allowRemote: true,
			want: []string{"[2001:db8::1]:443"}, lookups: map[string]int{"v6-remote.test": 1}},
		{name: "several addresses, first remote: refused because the first is pinned", targets: []string{"multi.test:80"},
			wantIs: ErrRemote, wantMsg: []string{"192.0.2.8"}, lookups: map[string]int{"multi.test": 1}},
		{name: "several addresses, first loopback: the first is pinned", targets: []string{"multi-lo.test:80"},
			want: []string{"127.0.0.2:80"}, lookups: map[string]int{"multi-lo.test": 1}},
		{name: "one remote target refuses the whole list", targets: []string{"127.0.0.1:80", "10.0.0.1:80"}, wantIs: ErrRemote},
		{name: "a name used with several ports is looked up once",
			targets: []string{"localhost:80", "localhost:81", "127.0.0.1:82", "multi-lo.test:83", "localhost:84"},
			want:    []string{"127.0.0.1:80", "127.0.0.1:81", "127.0.0.1:82", "127.0.0.2:83", "127.0.0.1:84"},
			lookups: map[string]int{"localhost": 1, "multi-lo.test": 1}},
		{name: "missing port", targets: []string{"127.0.0.1"}, wantErr: true, wantMsg: []string{`"127.0.0.1"`}},
		{name: "empty port", targets: []string{"127.0.0.1:"}, wantErr: true, wantMsg: []string{`"127.0.0.1:"`, "1 to 65535"}},
		{name: "port 0", targets: []string{"127.0.0.1:0"}, wantErr: true, wantMsg: []string{`"127.0.0.1:0"`, "1 to 65535"}},
		{name: "port 70000", targets: []string{"127.0.0.1:70000"}, wantErr: true, wantMsg: []string{`"127.0.0.1:70000"`, "1 to 65535"}},
		{name: "non-numeric port", targets: []string{"localhost:http"}, wantErr: true, wantMsg: []string{`"localhost:http"`, "1 to 65535"}},
		{name: "negative port", targets: []string{"127.0.0.1:-1"}, wantErr: true},
		{name: "empty host", targets: []string{":80"}, wantErr: true, wantMsg: []string{`":80"`}},
		{name: "resolver error is kept", targets: []string{"broken.test:80"}, wantIs: errNoSuchHost,
			wantMsg: []string{`"broken.test:80"`}, lookups: map[string]int{"broken.test": 1}},
		{name: "name without addresses", targets: []string{"empty.test:80"}, wantErr: true,
			wantMsg: []string{`"empty.test:80"`}, lookups: map[string]int{"empty.test": 1}},
		{name: "resolver answering an invalid address", targets: []string{"invalid.test:80"}, allowRemote: true, wantErr: true,
			wantMsg: []string{`"invalid.test:80"`}, lookups: map[string]int{"invalid.test": 1}},
		{name: "no targets", targets: nil, want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeResolver{t: t, answers: answers, errs: errs}
			got, err := Resolve(context.Background(), r, tc.targets, tc.allowRemote)
			if tc.wantErr || tc.wantIs != nil {
				if err == nil {
					t.Fatalf("Resolve(%q) = %v, want an error", tc.targets, got)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("Resolve(%q) error %q does not wrap %q", tc.targets, err, tc.wantIs)
				}
				if got != nil {
					t.Errorf("Resolve(%q) returned destinations %v with its error", tc.targets, got)
				}
			} else if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.targets, err)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %s", err, m)
				}
			}
			if tc.want != nil {
				if len(got) != len(tc.want) {
					t.Fatalf("Resolve(%q) = %v, want %v", tc.targets, got, tc.want)
				}
				for i, d := range got {
					if d.String() != tc.want[i] || d.AddrPort != netip.MustParseAddrPort(tc.want[i]) {
						t.Errorf("destination %d = %v (%v), want %s", i, d, d.AddrPort, tc.want[i])
					}
				}
			}
			names := map[string]bool{}
			for name := range r.count {
				names[name] = true
			}
			for name := range tc.lookups {
				names[name] = true
			}
			for name := range names {
				if got, want := r.count[name], tc.lookups[name]; got != want {
					t.Errorf("%q looked up %d times, want %d", name, got, want)
				}
			}
		})
	}
}

func TestDestinationString(t *testing.T) {
	tests := []struct {
		name string
		ap   string
		want string
	}{
		{name: "IPv4", ap: "127.0.0.1:8080", want: "127.0.0.1:8080"},
		{name: "IPv6 in brackets", ap: "[::1]:8080", want: "[::1]:8080"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDestination(netip.MustParseAddrPort(tc.ap))
			if d.String() != tc.want {
				t.Errorf("String() = %q, want %q", d.String(), tc.want)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		name string
		addr string
		want bool
	}{
		{name: "127.0.0.1", addr: "127.0.0.1", want: true},
		{name: "top of 127/8", addr: "127.255.255.254", want: true},
		{name: "::1", addr: "::1", want: true},
		{name: "IPv4-mapped loopback", addr: "::ffff:127.0.0.1", want: true},
		{name: "unspecified IPv4", addr: "0.0.0.0", want: false},
		{name: "unspecified IPv6", addr: "::", want: false},
		{name: "private", addr: "10.0.0.1", want: false},
		{name: "IPv4-mapped private", addr: "::ffff:10.0.0.1", want: false},
		{name: "documentation", addr: "192.0.2.7", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsLoopback(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Errorf("IsLoopback(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}
