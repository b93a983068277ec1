package coordinator

import (
	"bytes"
	"context"
	"encoding/xml"
	"image"
	"image/png"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/vantageprobe/vantage/coordinator/confirm"
)

const statusPageConfig = `status_page:
  title: Example status
  matchers: ['target=~"https://(shop|api)\\..*"']
  group_by: module
`

// startStatusPage serves a coordinator with the status page: shop is
// down (two locations fail it), api up with a one-hour outage two days
// ago, secret down but not chosen for the page.
func startStatusPage(t *testing.T) *testCoordinator {
	t.Helper()
	c := mustStart(t, deadLocations(t, "ams", "fra")+statusPageConfig, func(o *Options) { o.StatusPage = true })
	for _, loc := range []string{"ams", "fra"} {
		mustPost(t, c.url+"/api/v1/reports", failingBatch(loc, "https://shop.example", 1))
		mustPost(t, c.url+"/api/v1/reports", failingBatch(loc, "https://secret.example", 2))
	}
	now := time.Now().UTC()
	snapshot := `{"location": "ams", "run": "r-ams", "reports": [], "snapshot": {"seq": 2, "time": "` + now.Format(time.RFC3339) + `",
  "up": 1, "up_targets": [{"target": "https://api.example", "module": "tcp_connect"}]}}`
	mustPost(t, c.url+"/api/v1/reports", snapshot)
	past := outage(1000, now.Add(-2*day), time.Hour)
	past.Target, past.Module = "https://api.example", "tcp_connect"
	if err := c.store.Put([]confirm.Incident{past}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStatusPageHTML(t *testing.T) {
	c := startStatusPage(t)
	status, page := do(t, http.MethodGet, c.url+"/status", "", "")
	if status != http.StatusOK {
		t.Fatalf("/status: %d", status)
	}
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if got := text(find(doc, func(n *html.Node) bool { return n.Data == "h1" })); got != "Example status" {
		t.Errorf("h1 = %q", got)
	}
	if got := text(find(doc, func(n *html.Node) bool { return attr(n, "id") == "overall" })); got != "1 of 2 down" {
		t.Errorf("overall = %q, want 1 of 2 down", got)
	}
	var groups []string
	for _, s := range findAll(doc, func(n *html.Node) bool { return n.Data == "section" && attr(n, "class") == "group" }) {
		groups = append(groups, text(find(s, func(n *html.Node) bool { return n.Data == "h2" })))
	}
	if strings.Join(groups, ",") != "http_2xx,tcp_connect" {
		t.Errorf("groups = %v, want http_2xx and tcp_connect", groups)
	}
	rows := map[string]*html.Node{}
	for _, n := range findAll(doc, func(n *html.Node) bool { return attr(n, "class") == "target" }) {
		rows[attr(n, "data-target")] = n
	}
	if len(rows) != 2 || rows["https://shop.example"] == nil || rows["https://api.example"] == nil {
		t.Fatalf("rows = %v, want shop and api only (secret is not chosen)", rows)
	}
	if strings.Contains(page, "secret.example") {
		t.Error("the page shows a target its matchers leave out")
	}
	for target, want := range map[string]string{"https://shop.example": "down", "https://api.example": "operational"} {
		row := rows[target]
		if got := text(find(row, func(n *html.Node) bool { return strings.HasPrefix(attr(n, "class"), "state ") })); got != want {
			t.Errorf("%s state = %q, want %q", target, got, want)
		}
		bars := findAll(row, func(n *html.Node) bool { return strings.HasPrefix(attr(n, "class"), "bar ") })
		if len(bars) != statusDays {
			t.Errorf("%s has %d bars, want %d", target, len(bars), statusDays)
		}
	}
	// api's outage two days ago: one hour of 24 is a major day.
	day := time.Now().UTC().Add(-2 * day).Format("2006-01-02")
	bars := findAll(rows["https://api.example"], func(n *html.Node) bool { return strings.HasPrefix(attr(n, "class"), "bar ") })
	for _, b := range bars {
		if strings.HasPrefix(attr(b, "title"), day) {
			if attr(b, "class") != "bar major" || attr(b, "title") != day+": 95.83%" {
				t.Errorf("the outage's day: %s %q, want major at 95.83%%", attr(b, "class"), attr(b, "title"))
			}
		} else if attr(b, "class") != "bar ok" {
			t.Errorf("day %q is %s, want ok", attr(b, "title"), attr(b, "class"))
		}
	}
	incidents := find(doc, func(n *html.Node) bool { return n.Data == "section" && attr(n, "class") == "incidents" })
	if got := text(incidents); !strings.Contains(got, "https://shop.example") || strings.Contains(got, "api.example") {
		t.Errorf("current incidents = %q, want shop's outage only", got)
	}
	// No script and nothing fetched from elsewhere.
	for _, n := range findAll(doc, func(n *html.Node) bool { return n.Type == html.ElementNode }) {
		if n.Data == "script" || attr(n, "src") != "" || (n.Data == "link" && attr(n, "href") != "") {
			t.Errorf("the page loads something: <%s %v>", n.Data, n.Attr)
		}
	}
	if find(doc, func(n *html.Node) bool { return n.Data == "meta" && attr(n, "name") == "viewport" }) == nil {
		t.Error("no viewport meta: phones would render the desktop layout")
	}
}

func TestStatusBadges(t *testing.T) {
	c := startStatusPage(t)
	for _, tc := range []struct {
		path, label, value string
	}{
		{"/status/badge/" + url.PathEscape("https://shop.example") + "/status.svg", "status", "down"},
		{"/status/badge/" + url.PathEscape("https://api.example") + "/status.svg?module=tcp_connect", "status", "up"},
		{"/status/badge/" + url.PathEscape("https://api.example") + "/uptime.svg", "uptime 30d", formatPercent(1 - 3600.0/(30*86400))},
		{"/status/badge/" + url.PathEscape("https://api.example") + "/uptime.svg?range=7d", "uptime 7d", "99.40%"},
	} {
		resp, err := http.Get(c.url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		var svg struct {
			XMLName xml.Name `xml:"svg"`
			Title   string   `xml:"title"`
			Texts   []string `xml:"g>text"`
		}
		if err := xml.Unmarshal(buf.Bytes(), &svg); err != nil {
			t.Errorf("%s is not valid SVG: %v\n%s", tc.path, err, buf.String())
			continue
		}
		if len(svg.Texts) != 2 || svg.Texts[0] != tc.label || svg.Texts[1] != tc.value || svg.Title != tc.label+": "+tc.value {
			t.Errorf("%s reads %q (%q), want %s: %s", tc.path, svg.Texts, svg.Title, tc.label, tc.value)
		}
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/status/badge/" + url.PathEscape("https://secret.example") + "/status.svg", 404},
		{"/status/badge/" + url.PathEscape("https://shop.example") + "/other.svg", 404},
		{"/status/badge/" + url.PathEscape("https://shop.example") + "/uptime.svg?range=91d", 400},
	} {
		if status, body := do(t, http.MethodGet, c.url+tc.path, "", ""); status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.path, status, body, tc.status)
		}
	}
}

// TestStatusPageShowsMaintenance: a window on api shows on its row, its
// badge and the banner.
func TestStatusPageShowsMaintenance(t *testing.T) {
	c := startStatusPage(t)
	mustPost(t, c.url+"/api/v1/maintenances", `{"matchers": ["target=\"https://api.example\""], "duration": "1h"}`)
	mustPost(t, c.url+"/api/v1/maintenances", `{"matchers": ["target=\"https://shop.example\""], "duration": "1h"}`)
	_, page := do(t, http.MethodGet, c.url+"/status", "", "")
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	row := find(doc, func(n *html.Node) bool { return attr(n, "data-target") == "https://api.example" })
	if got := text(find(row, func(n *html.Node) bool { return strings.HasPrefix(attr(n, "class"), "state ") })); got != "maintenance" {
		t.Errorf("api's state = %q, want maintenance", got)
	}
	// shop was confirmed down before its window: it stays down.
	if got := text(find(doc, func(n *html.Node) bool { return attr(n, "id") == "overall" })); got != "1 of 2 down" {
		t.Errorf("overall = %q, want 1 of 2 down (shop's outage predates its window)", got)
	}
	_, badge := do(t, http.MethodGet, c.url+"/status/badge/"+url.PathEscape("https://api.example")+"/status.svg", "", "")
	if !strings.Contains(badge, "<title>status: maintenance</title>") {
		t.Errorf("api's badge = %s, want maintenance", badge)
	}
}

// The colours of the page the screenshots are checked for.
var (
	colourRed   = [3]uint32{0xcf, 0x22, 0x2e} // the down banner, a down state
	colourBar   = [3]uint32{0x2d, 0xa4, 0x4e} // a day without downtime
	colourGreen = [3]uint32{0x1a, 0x7f, 0x37} // an operational state
)

const eventsStatusPageConfig = `status_page:
  title: Example status
  matchers: ['public!="no"']
  group_by: team
`

// startEventsStatusPage serves a status page of pushed events only: a
// raised one (billing), a pending one (backup) and one the matchers leave
// out (public=no).
func startEventsStatusPage(t *testing.T) *testCoordinator {
	t.Helper()
	c := mustStart(t, deadLocations(t, "ams", "fra")+eventsStatusPageConfig, func(o *Options) { o.StatusPage = true })
	for _, f := range []url.Values{
		{"id": {"billing-run"}, "raise": {"now"}, "subject": {"Billing run"}, "detail": {"exit status 3 on db-7"}, "label": {"team=billing"}},
		{"id": {"nightly-backup"}, "raise": {"+1h"}, "subject": {"Nightly backup"}, "label": {"team=storage"}},
		{"id": {"internal-cron"}, "raise": {"now"}, "subject": {"Internal cron"}, "label": {"team=storage", "public=no"}},
	} {
		if status, _, body := submit(t, c.url, "", f); status != http.StatusCreated {
			t.Fatalf("event %s: %d %s", f.Get("id"), status, body)
		}
	}
	return c
}

// Pushed events the matchers choose are on the page, grouped by their
// label, by subject, down while raised; their source and detail are not.
func TestStatusPageShowsEvents(t *testing.T) {
	c := startEventsStatusPage(t)
	_, page := do(t, http.MethodGet, c.url+"/status", "", "")
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if got := text(find(doc, func(n *html.Node) bool { return attr(n, "id") == "overall" })); got != "1 of 2 down" {
		t.Errorf("overall = %q, want 1 of 2 down", got)
	}
	states := map[string]string{}
	for _, s := range findAll(doc, func(n *html.Node) bool { return n.Data == "section" && attr(n, "class") == "group" }) {
		group := text(find(s, func(n *html.Node) bool { return n.Data == "h2" }))
		for _, row := range findAll(s, func(n *html.Node) bool { return attr(n, "class") == "target" }) {
			state := text(find(row, func(n *html.Node) bool { return strings.HasPrefix(attr(n, "class"), "state ") }))
			states[group+"/"+attr(row, "data-target")] = state
			if len(findAll(row, func(n *html.Node) bool { return attr(n, "class") == "bars" })) != 0 {
				t.Errorf("event %s has uptime bars", attr(row, "data-target"))
			}
		}
	}
	if want := map[string]string{"billing/Billing run": "down", "storage/Nightly backup": "operational"}; !maps.Equal(states, want) {
		t.Errorf("rows = %v, want %v", states, want)
	}
	incidents := text(find(doc, func(n *html.Node) bool { return n.Data == "section" && attr(n, "class") == "incidents" }))
	if !strings.Contains(incidents, "Billing run") {
		t.Errorf("current incidents = %q, want the raised event", incidents)
	}
	for _, secret := range []string{"127.0.0.1", "exit status 3", "Internal cron"} {
		if strings.Contains(page, secret) {
			t.Errorf("the page shows %q", secret)
		}
	}
}

// TestStatusPageEventsInChromium renders the events' page on a phone:
// the red banner of the raised event and the green state of the pending
// one.
func TestStatusPageEventsInChromium(t *testing.T) {
	c := startEventsStatusPage(t)
	shot := filepath.Join(t.ArtifactDir(), "status-events-phone.png")
	screenshot(t, c.url+"/status", shot, 390, 844)
	img := mustDecodePNG(t, shot)
	counts := countColours(img, colourRed, colourGreen)
	if min := (390 - 40) * 40; counts[0] < min {
		t.Errorf("%d red pixels, want the down banner (≥ %d)", counts[0], min)
	}
	// "operational" in bold: its glyphs' solid pixels.
	if counts[1] < 40 {
		t.Errorf("%d green pixels, want the pending event's operational state (≥ 40)", counts[1])
	}
	t.Logf("%s (%d red, %d green pixels)", shot, counts[0], counts[1])
}

func TestStatusPageOnlyWithTheFlag(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra")+statusPageConfig)
	for _, p := range []string{"/status", "/status/badge/x/status.svg"} {
		if status, _ := do(t, http.MethodGet, c.url+p, "", ""); status != http.StatusNotFound {
			t.Errorf("%s without --web.status-page: %d, want 404", p, status)
		}
	}
}

// TestStatusPageInChromium renders the page in headless Chromium at a
// phone's size and at a desktop's, and checks the screenshots: their size,
// the red "down" banner across the top, and the green uptime bars.
func TestStatusPageInChromium(t *testing.T) {
	c := startStatusPage(t)
	for _, size := range []struct {
		name          string
		width, height int
	}{{"phone", 390, 844}, {"desktop", 1280, 900}} {
		shot := filepath.Join(t.ArtifactDir(), "status-"+size.name+".png")
		screenshot(t, c.url+"/status", shot, size.width, size.height)
		img := mustDecodePNG(t, shot)
		if b := img.Bounds(); b.Dx() != size.width || b.Dy() != size.height {
			t.Errorf("%s screenshot is %dx%d, want %dx%d", size.name, b.Dx(), b.Dy(), size.width, size.height)
		}
		counts := countColours(img, colourRed, colourBar)
		red, green := counts[0], counts[1]
		// The banner spans the page's width (at most 860px) less its margins, and is
		// over 40px high; the bars of a target are 28px high.
		if min := (min(size.width, 860) - 40) * 40; red < min {
			t.Errorf("%s screenshot: %d red pixels, want the down banner (≥ %d)", size.name, red, min)
		}
		if min := (min(size.width, 860) - 60) * 28 / 2; green < min {
			t.Errorf("%s screenshot: %d green pixels, want a row of uptime bars (≥ %d)", size.name, green, min)
		}
		t.Logf("%s: %s (%d red, %d green pixels)", size.name, shot, red, green)
	}
}

// screenshot renders url in headless Chromium at width×height into the
// PNG file shot.
func screenshot(t *testing.T, url, shot string, width, height int) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is required: %v; install the Debian package chromium (apt-get install --no-install-recommends chromium)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--no-first-run", "--force-device-scale-factor=1", "--user-data-dir="+t.TempDir(),
		"--screenshot="+shot, "--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), url)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
}

// countColours counts the pixels of img exactly of each colour.
func countColours(img image.Image, colours ...[3]uint32) []int {
	n := make([]int, len(colours))
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			for i, c := range colours {
				if c == [3]uint32{r >> 8, g >> 8, b >> 8} {
					n[i]++
				}
			}
		}
	}
	return n
}

func mustDecodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() < 5000 {
		t.Errorf("screenshot %s is %d bytes: nothing rendered?", path, st.Size())
	}
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	return img
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if all := findAll(n, match); len(all) > 0 {
		return all[0]
	}
	return &html.Node{}
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
