//go:build linux

package main

import (
	"bytes"
	"context"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/report"
)

// chromium finds Debian's headless browser, or skips the test saying how to get it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install -y chromium; .ci/run installs it): report.html not checked in a browser")
	return ""
}

// requestTrap is a TCP listener every request of the browser is sent to (as its proxy): it counts
// connections, and the report must make none.
type requestTrap struct {
	l    net.Listener
	mu   sync.Mutex
	seen []string
	wg   sync.WaitGroup
}

func newRequestTrap(t *testing.T) *requestTrap {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &requestTrap{l: l}
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			tr.mu.Lock()
			tr.seen = append(tr.seen, line)
			tr.mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); tr.wg.Wait() })
	return tr
}

// browserServices are the hosts Chromium's own background services call (component updates, the
// network time, account checks), with or without a page, whatever flags say. Requests to them are
// the browser's, not the page's; every other request reaching the trap is the page's.
var browserServices = []string{"update.googleapis.com", "accounts.google.com", "clients2.google.com",
	"clientservices.googleapis.com", "optimizationguide-pa.googleapis.com", "content-autofill.googleapis.com",
	"safebrowsingohttpgateway.googleapis.com", "redirector.gvt1.com", "edgedl.me.gvt1.com", "www.google.com"}

// pageRequests are the requests that reached the trap, less the browser's own (logged).
func (tr *requestTrap) pageRequests(t *testing.T) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, r := range tr.seen {
		own := false
		for _, h := range browserServices {
			own = own || strings.Contains(r, " "+h+":") || strings.Contains(r, "://"+h+"/")
		}
		if own {
			t.Logf("ignored the browser's own request: %.80s", r)
			continue
		}
		out = append(out, r)
	}
	return out
}

// browse runs headless Chromium on a page with no network but the trap, and returns its output.
func browse(t *testing.T, bin, page, trap string, action ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
		"--disable-extensions", "--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
		// The browser's own services (time, component and account checks) would call home through
		// the trap too; these turn them off, so that whatever reaches the trap came from the page.
		"--no-pings", "--disable-client-side-phishing-detection", "--disable-domain-reliability",
		"--disable-breakpad", "--metrics-recording-only", "--safebrowsing-disable-auto-update",
		"--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationHintsFetching,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
		"--proxy-server=http://" + trap, "--proxy-bypass-list=<-loopback>",
		"--window-size=1280,2400", "--virtual-time-budget=5000"}, action...)
	args = append(args, "file://"+page)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return out
}

// TestReportInChromium opens report.html in headless Chromium with every request routed to a trap:
// the screenshot is not blank, every chart is in the DOM and drawn, and no request leaves the page.
func TestReportInChromium(t *testing.T) {
	bin := chromium(t)
	dir := filepath.Join(t.TempDir(), "r")
	p := gatePlan(t, "browser", `thresholds:
  - "connect.p99 < 1s"
  - "connections.established >= 1_000_000"
`)
	if code, stdout, stderr := runMain(t, nil, "run", p, "-q", "--out", dir); code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	s := readSummary(t, dir)
	d, err := report.LoadChartData(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	ids := report.ChartIDs(s, d)
	for _, want := range []string{report.ChartConnections, report.ChartLatency + "connect", report.ChartSpectrum, report.ChartOutcomes} {
		found := false
		for _, id := range ids {
			found = found || id == want
		}
		if !found {
			t.Errorf("chart %s missing from %v", want, ids)
		}
	}
	page := filepath.Join(dir, report.HTMLFile)
	trap := newRequestTrap(t)

	dom := string(browse(t, bin, page, trap.l.Addr().String(), "--dump-dom"))
	for _, id := range ids {
		i := strings.Index(dom, `id="`+id+`"`)
		if i < 0 {
			t.Errorf("chart %s is not in the DOM", id)
			continue
		}
		// ECharts marks the containers it drew into and puts a canvas inside.
		tagEnd := strings.Index(dom[i:], ">")
		rest := dom[i:]
		if next := strings.Index(rest[1:], `class="panel"`); next > 0 {
			rest = rest[:next]
		}
		if tagEnd < 0 || !strings.Contains(dom[i:i+tagEnd], "_echarts_instance_") || !strings.Contains(rest, "<canvas") {
			t.Errorf("chart %s was not drawn", id)
		}
	}
	if !strings.Contains(dom, `id="verdict"`) || !strings.Contains(dom, "connections.established") {
		t.Error("the verdict and the checks are not on the page")
	}

	shot := filepath.Join(t.TempDir(), "report.png")
	browse(t, bin, page, trap.l.Addr().String(), "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	colors := map[uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	var top int
	for _, n := range colors {
		top = max(top, n)
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	if len(colors) < 50 || float64(top)/float64(total) > 0.95 {
		t.Errorf("the screenshot looks blank: %d colours, the commonest covers %d of %d pixels", len(colors), top, total)
	}
	if reqs := trap.pageRequests(t); len(reqs) > 0 {
		t.Errorf("the page made %d request(s): %q", len(reqs), reqs)
	}

	// The page's own account of what it loaded (Resource Timing lists every fetch a page starts,
	// file:// ones included, which no proxy sees): a copy of the report writes it into the DOM.
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	probe := `<pre id="resources"></pre><script>window.addEventListener('load', function () {
  document.getElementById('resources').textContent = 'loaded:' + performance.getEntriesByType('resource').map(function (e) { return e.name; }).join(' ');
});</script></body>`
	probed := filepath.Join(filepath.Dir(page), "probe.html")
	end := bytes.LastIndex(html, []byte("</body>"))
	if end < 0 {
		t.Fatal("report.html has no </body>")
	}
	if err := os.WriteFile(probed, append(append(html[:end:end], probe...), html[end+len("</body>"):]...), 0o644); err != nil {
		t.Fatal(err)
	}
	dom = string(browse(t, bin, probed, trap.l.Addr().String(), "--dump-dom"))
	if i := strings.Index(dom, `<pre id="resources">loaded:`); i < 0 {
		t.Error("the resource probe did not run")
	} else if rest := dom[i+len(`<pre id="resources">loaded:`):]; !strings.HasPrefix(rest, "</pre>") {
		t.Errorf("the page loaded resources: %.300s", rest)
	}
}
