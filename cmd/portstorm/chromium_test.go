//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portstorm/portstorm/loadgen/memory"
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

// devtools drives headless Chromium over the DevTools protocol on --remote-debugging-pipe: the
// browser reads commands from its fd 3 and writes answers and events to its fd 4, each one JSON
// message ended by a NUL byte. One goroutine (the test's) writes a command and reads until its
// answer, keeping the events read on the way.
type devtools struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       io.WriteCloser
	r       *bufio.Reader
	id      int
	session string
	events  []cdpMessage
	stderr  bytes.Buffer
}

type cdpMessage struct {
	ID        int                       `json:"id,omitempty"`
	Method    string                    `json:"method,omitempty"`
	Params    json.RawMessage           `json:"params,omitempty"`
	Result    json.RawMessage           `json:"result,omitempty"`
	Error     *struct{ Message string } `json:"error,omitempty"`
	SessionID string                    `json:"sessionId,omitempty"`
}

// startBrowser starts headless Chromium with a blank page and attaches to it. Every network
// request of the browser goes to a proxy on a closed loopback port, so none leaves the machine;
// the page's requests are judged from the protocol's Network events, whatever the browser's own
// services do.
func startBrowser(t *testing.T, bin string) *devtools {
	t.Helper()
	// A safety net only, for a browser that hangs: the protocol's events pace everything else.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	toBrowser, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	evR, fromBrowser, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &devtools{t: t, w: cmdW, r: bufio.NewReader(evR)}
	d.cmd = exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--remote-debugging-pipe", "--user-data-dir="+t.TempDir(), "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
		"--proxy-server=http://127.0.0.1:1", "about:blank")
	d.cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser} // fds 3 and 4
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	toBrowser.Close()
	fromBrowser.Close()
	t.Cleanup(func() {
		cmdW.Close() // the browser exits when its command pipe closes
		d.cmd.Wait()
		evR.Close()
		cancel()
	})
	var target struct{ TargetID string }
	d.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	d.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	d.session = attached.SessionID
	return d
}

// read returns the browser's next message.
func (d *devtools) read() cdpMessage {
	d.t.Helper()
	b, err := d.r.ReadBytes(0)
	if err != nil {
		d.t.Fatalf("devtools pipe: %v\n%s", err, d.stderr.String())
	}
	var m cdpMessage
	if err := json.Unmarshal(b[:len(b)-1], &m); err != nil {
		d.t.Fatalf("devtools message %.200q: %v", b, err)
	}
	return m
}

// call sends one command (to the page's session, or to the browser when session is "") and
// decodes its result into out.
func (d *devtools) call(session, method string, params any, out any) {
	d.t.Helper()
	d.id++
	b, err := json.Marshal(map[string]any{"id": d.id, "method": method, "params": params, "sessionId": session})
	if err != nil {
		d.t.Fatal(err)
	}
	if session == "" {
		b, _ = json.Marshal(map[string]any{"id": d.id, "method": method, "params": params})
	}
	if _, err := d.w.Write(append(b, 0)); err != nil {
		d.t.Fatalf("%s: %v", method, err)
	}
	for {
		m := d.read()
		if m.ID != d.id {
			if m.Method != "" {
				d.events = append(d.events, m)
			}
			continue
		}
		if m.Error != nil {
			d.t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				d.t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

// page calls a method of the page's session.
func (d *devtools) page(method string, params any, out any) {
	d.t.Helper()
	d.call(d.session, method, params, out)
}

// waitEvent reads until the page's session sends the event.
func (d *devtools) waitEvent(method string) {
	d.t.Helper()
	for _, m := range d.events {
		if m.Method == method && m.SessionID == d.session {
			return
		}
	}
	for {
		m := d.read()
		if m.Method != "" {
			d.events = append(d.events, m)
		}
		if m.Method == method && m.SessionID == d.session {
			return
		}
	}
}

// open loads url in the page and lets its scripts run for 5 s of the browser's virtual time (which
// waits for pending fetches and runs as fast as the machine allows): the budget's expiry, not a
// clock, says the page is done.
func (d *devtools) open(url string) {
	d.t.Helper()
	d.events = d.events[:0]
	d.page("Network.enable", map[string]any{}, nil)
	d.page("Page.enable", map[string]any{}, nil)
	d.page("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 2400, "deviceScaleFactor": 1, "mobile": false}, nil)
	d.page("Emulation.setVirtualTimePolicy", map[string]any{"policy": "pause"}, nil)
	d.page("Page.navigate", map[string]any{"url": url}, nil)
	d.page("Emulation.setVirtualTimePolicy", map[string]any{"policy": "pauseIfNetworkFetchesPending", "budget": 5000}, nil)
	d.waitEvent("Emulation.virtualTimeBudgetExpired")
}

// requests are the URLs of every request the page made since open, in order (the page's own
// Network events: the browser's background requests are not the page's and do not appear).
func (d *devtools) requests() []string {
	var out []string
	for _, m := range d.events {
		if m.Method != "Network.requestWillBeSent" || m.SessionID != d.session {
			continue
		}
		var p struct{ Request struct{ URL string } }
		if err := json.Unmarshal(m.Params, &p); err != nil {
			d.t.Fatal(err)
		}
		out = append(out, p.Request.URL)
	}
	return out
}

// eval evaluates a JavaScript expression in the page and returns its value as a string.
func (d *devtools) eval(expr string) string {
	d.t.Helper()
	var r struct {
		Result struct {
			Value any
		}
		ExceptionDetails *struct{ Text string }
	}
	d.page("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		d.t.Fatalf("%s: %s", expr, r.ExceptionDetails.Text)
	}
	s, _ := r.Result.Value.(string)
	return s
}

// foreignRequests are the requests, made by the page at url, for anything but url itself.
func foreignRequests(url string, reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if r != url {
			out = append(out, r)
		}
	}
	return out
}

// TestReportInChromium opens report.html in headless Chromium driven over the DevTools protocol:
// the screenshot is not blank, every chart is in the DOM and drawn, and the page requests nothing
// but itself. The same check on a copy of the page that fetches two resources must see both, or
// the check proves nothing.
func TestReportInChromium(t *testing.T) {
	bin := chromium(t)
	dir := filepath.Join(t.TempDir(), "r")
	p := gatePlan(t, "browser", `thresholds:
  - "connect.p99 < 2m"
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
	// The run writes one request per connection: the request charts are drawn too.
	for _, want := range []string{report.ChartConnections, report.ChartRequests, report.ChartRequestLatency,
		report.ChartLatency + "connect", report.ChartSpectrum, report.ChartOutcomes} {
		found := false
		for _, id := range ids {
			found = found || id == want
		}
		if !found {
			t.Errorf("chart %s missing from %v", want, ids)
		}
	}
	page := filepath.Join(dir, report.HTMLFile)
	b := startBrowser(t, bin)
	url := "file://" + page
	b.open(url)

	// The requests the page made, from the page's own Network events; the document is the first.
	reqs := b.requests()
	t.Logf("the page's requests: %q", reqs)
	if len(reqs) == 0 || reqs[0] != url {
		t.Errorf("the page's requests %q do not start with the page itself", reqs)
	}
	if foreign := foreignRequests(url, reqs); len(foreign) > 0 {
		t.Errorf("the page made %d request(s) besides itself: %q", len(foreign), foreign)
	}
	// The page's own account (Resource Timing lists every fetch it started) must be empty too.
	if res := b.eval(`performance.getEntriesByType('resource').map(function (e) { return e.name; }).join(' ')`); res != "" {
		t.Errorf("the page loaded resources: %.300s", res)
	}

	dom := b.eval("document.documentElement.outerHTML")
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

	// A screenshot needs a new frame, which paused virtual time never draws: let time run.
	b.page("Emulation.setVirtualTimePolicy", map[string]any{"policy": "advance"}, nil)
	var shot struct{ Data []byte } // base64 in JSON, decoded by encoding/json
	b.page("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": false}, &shot)
	img, err := png.Decode(bytes.NewReader(shot.Data))
	if err != nil {
		t.Fatal(err)
	}
	colors := map[uint32]int{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	var top int
	for _, n := range colors {
		top = max(top, n)
	}
	total := (bounds.Dx() / 2) * (bounds.Dy() / 2)
	if len(colors) < 50 || float64(top)/float64(total) > 0.95 {
		t.Errorf("the screenshot looks blank: %d colours, the commonest covers %d of %d pixels", len(colors), top, total)
	}

	// The control: a copy of the report that fetches an image from afar and a script beside it.
	// The proxy on a closed port fails the fetch: nothing leaves the machine.
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.LastIndex(html, []byte("</body>"))
	if end < 0 {
		t.Fatal("report.html has no </body>")
	}
	const remote = "http://192.0.2.1/pixel.png" // TEST-NET-1 (RFC 5737)
	fetching := filepath.Join(filepath.Dir(page), "fetching.html")
	extra := `<img src="` + remote + `"><script src="beside.js"></script></body>`
	if err := os.WriteFile(fetching, append(append(html[:end:end], extra...), html[end+len("</body>"):]...), 0o644); err != nil {
		t.Fatal(err)
	}
	curl := "file://" + fetching
	b.open(curl)
	foreign := foreignRequests(curl, b.requests())
	for _, want := range []string{remote, "file://" + filepath.Join(filepath.Dir(page), "beside.js")} {
		if !slices.Contains(foreign, want) {
			t.Errorf("the check missed the control page's request for %s: saw %q", want, foreign)
		}
	}

	// The memory section, which a run shows when it measured its memory (1,000 connections held
	// at least: more than this test holds), rendered from the run's summary with a measurement.
	mdir := t.TempDir()
	s.Memory = &memory.Report{AtS: 12, Connections: 2000,
		Kernel: &memory.Kernel{SlabBytes: 14_000_000, PerConnection: 7000, Caches: []memory.CacheGrowth{
			{Name: "TCP", Objects: 4000, ObjSize: 2368, Bytes: 9_900_000, PerConnection: 4950}}},
		Generator: &memory.Process{Processes: 1, BaseRSS: 20_000_000, RSS: 21_000_000, PerConnection: 500}}
	if err := report.WriteHTML(mdir, s); err != nil {
		t.Fatal(err)
	}
	murl := "file://" + filepath.Join(mdir, report.HTMLFile)
	b.open(murl)
	if foreign := foreignRequests(murl, b.requests()); len(foreign) > 0 {
		t.Errorf("the page with memory made %d request(s) besides itself: %q", len(foreign), foreign)
	}
	text := b.eval(`(function () { var e = document.getElementById('memory'); return e && e.offsetHeight > 0 ? e.innerText : ''; })()`)
	for _, want := range []string{"Memory per held connection", "2,000 connections held", "kernel slab\t6.84 KiB", "generator RSS\t500 B", "TCP\t4.83 KiB"} {
		if !strings.Contains(text, want) {
			t.Errorf("the memory section (shown: %v) lacks %q:\n%s", text != "", want, text)
		}
	}
}
