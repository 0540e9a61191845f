package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, on a registry of its own:
// HTTP requests, bytes and latency by route, and the store's status read
// on every scrape.
type metrics struct {
	reg      *prometheus.Registry
	handler  http.Handler
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	rx, tx   *prometheus.CounterVec
}

func newMetrics(status func() Status) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stowage_osd_http_requests_total", Help: "HTTP requests served, by method, route and status code.",
	}, []string{"method", "route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stowage_osd_http_request_duration_seconds",
		Help:    "Time from the request's arrival to the end of its response, by method and route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "route"})
	m.rx = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stowage_osd_http_request_body_bytes_total", Help: "Request body bytes read, by route.",
	}, []string{"route"})
	m.tx = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stowage_osd_http_response_body_bytes_total", Help: "Response body bytes written, by route.",
	}, []string{"route"})
	m.reg.MustRegister(m.requests, m.latency, m.rx, m.tx, newStoreCollector(status))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(method, route string, code int, rx, tx int64, d time.Duration) {
	switch method {
	case "GET", "HEAD", "PUT", "DELETE", "POST":
	default:
		method = "other" // bounded label values
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(method, route).Observe(d.Seconds())
	if rx > 0 {
		m.rx.WithLabelValues(route).Add(float64(rx))
	}
	if tx > 0 {
		m.tx.WithLabelValues(route).Add(float64(tx))
	}
}

// storeCollector turns Status into metrics on each scrape.
type storeCollector struct {
	status                                       func() Status
	blocks, bytes, capacity, free                *prometheus.Desc
	volumes, drives, readErrors, rebuild         *prometheus.Desc
	scrubRunning, scrubProgress, scrubBytes      *prometheus.Desc
	scrubPasses, scrubFindings, damage, repaired *prometheus.Desc
	scrubLastPass, scrubETA, drivesFailed        *prometheus.Desc
}

func newStoreCollector(status func() Status) *storeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("stowage_osd_"+name, help, labels, nil)
	}
	return &storeCollector{
		status:        status,
		blocks:        d("blocks", "Blocks stored."),
		bytes:         d("stored_bytes", "User bytes of the blocks stored."),
		capacity:      d("capacity_bytes", "Raw bytes of all member drives' extents."),
		free:          d("free_bytes", "Raw bytes free for new extents."),
		volumes:       d("volumes", "Volumes by state (healthy, degraded, rebuilding).", "state"),
		drives:        d("drives", "Drives by state.", "state"),
		readErrors:    d("drive_read_errors_total", "Fragment reads that failed with an I/O error, by drive.", "device"),
		rebuild:       d("rebuild_progress_ratio", "Progress of a volume's rebuild, 0..1.", "volume"),
		scrubRunning:  d("scrub_running", "1 while a scrub pass runs."),
		scrubProgress: d("scrub_progress_ratio", "Progress of the current (or last) scrub pass, 0..1."),
		scrubBytes:    d("scrub_read_bytes_total", "Fragment bytes read by scrubs."),
		scrubPasses:   d("scrub_passes_total", "Completed scrub passes."),
		scrubFindings: d("scrub_findings_total", "Damaged fragments found by scrubs since start, by kind.", "kind"),
		scrubLastPass: d("scrub_last_pass_findings", "Damaged fragments the last complete scrub pass found, by kind.", "kind"),
		scrubETA:      d("scrub_eta_seconds", "Estimated time left of the running scrub pass (0 when idle or unknown)."),
		damage:        d("damage_found_total", "Damaged fragments found by reads and scrubs, by kind.", "kind"),
		repaired: d("damage_repaired_total", "Damaged fragments rewritten, by kind of damage "+
			"(unattributed: scrub repairs whose kinds could not be told apart).", "kind"),
		drivesFailed: d("drives_failed_total", "Drives the node took out as failed by itself (I/O errors, device gone, label set to failed)."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.blocks, c.bytes, c.capacity, c.free, c.volumes, c.drives, c.readErrors, c.rebuild,
		c.scrubRunning, c.scrubProgress, c.scrubBytes, c.scrubPasses, c.scrubFindings, c.damage, c.repaired,
		c.scrubLastPass, c.scrubETA, c.drivesFailed} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctr := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	g(c.blocks, float64(st.Blocks))
	g(c.bytes, float64(st.Bytes))
	g(c.capacity, float64(st.CapacityBytes))
	g(c.free, float64(st.FreeBytes))
	vols := map[string]int{VolumeHealthy: 0, VolumeDegraded: 0, VolumeRebuilding: 0}
	for _, v := range st.Volumes {
		vols[v.State]++
		if v.Rebuild != nil {
			g(c.rebuild, v.Rebuild.Ratio, v.ID)
		}
	}
	for s, n := range vols {
		g(c.volumes, float64(n), s)
	}
	drives := map[string]int{}
	for _, d := range st.Drives {
		drives[d.State]++
		ctr(c.readErrors, float64(d.ReadErrors), d.Path)
	}
	for s, n := range drives {
		g(c.drives, float64(n), s)
	}
	running := 0.0
	if st.Scrub.Running {
		running = 1
	}
	g(c.scrubRunning, running)
	g(c.scrubProgress, st.Scrub.Progress.Ratio)
	ctr(c.scrubBytes, float64(st.Scrub.BytesRead))
	ctr(c.scrubPasses, float64(st.Scrub.Passes))
	eta := 0.0
	if st.Scrub.Running {
		eta = st.Scrub.Progress.ETASeconds
	}
	g(c.scrubETA, eta)
	for k, n := range st.Scrub.Findings {
		ctr(c.scrubFindings, float64(n), k)
	}
	for k, n := range st.Scrub.LastPassFindings {
		g(c.scrubLastPass, float64(n), k)
	}
	ctr(c.drivesFailed, float64(st.DrivesFailed))
	for k, n := range st.Damage.Found {
		ctr(c.damage, float64(n), k)
	}
	for k, n := range st.Damage.Repaired {
		ctr(c.repaired, float64(n), k)
	}
}
