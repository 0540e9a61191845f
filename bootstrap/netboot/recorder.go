package netboot

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Stage is one step of a machine's network boot, in the order they happen.
type Stage string

// The boot stages logged and counted per machine.
const (
	StageDHCPOffer Stage = "dhcp_offer" // proxyDHCP offer on port 67
	StageDHCPAck   Stage = "dhcp_ack"   // proxyDHCP ack on port 4011
	StageTFTP      Stage = "tftp"       // an iPXE binary fetched over TFTP
	StageScript    Stage = "script"     // the iPXE script fetched over HTTP
	StageKernel    Stage = "kernel"     // the kernel fetched over HTTP
	StageInitrd    Stage = "initrd"     // an initrd fetched over HTTP
)

// Recorder logs every boot stage with slog and counts it in its own
// Prometheus registry (metric names start with stowage_netboot_).
type Recorder struct {
	log      *slog.Logger
	registry *prometheus.Registry
	stages   *prometheus.CounterVec
	ignored  *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

// NewRecorder returns a recorder logging to log (slog.Default if nil).
func NewRecorder(log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	r := &Recorder{
		log:      log,
		registry: prometheus.NewRegistry(),
		stages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stowage_netboot_stage_total",
			Help: "Boot stages served, by stage (dhcp_offer, dhcp_ack, tftp, script, kernel, initrd) and profile.",
		}, []string{"stage", "profile"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stowage_netboot_ignored_total",
			Help: "DHCP packets and requests not answered, by reason.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stowage_netboot_profile_reloads_total",
			Help: "Profile file reloads, by result (ok, rejected).",
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stowage_netboot_errors_total",
			Help: "Errors while serving a boot stage, by stage.",
		}, []string{"stage"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stowage_netboot_sent_bytes_total",
			Help: "File bytes sent, by protocol (http, tftp).",
		}, []string{"proto"}),
	}
	r.registry.MustRegister(r.stages, r.ignored, r.reloads, r.errors, r.bytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Registry is the recorder's own registry, for /metrics.
func (r *Recorder) Registry() *prometheus.Registry { return r.registry }

// Log is the recorder's logger.
func (r *Recorder) Log() *slog.Logger { return r.log }

// Stage logs and counts one boot stage of the machine mac.
func (r *Recorder) Stage(stage Stage, mac, profile string, attrs ...any) {
	r.stages.WithLabelValues(string(stage), profile).Inc()
	r.log.Info("boot stage", append([]any{"stage", string(stage), "mac", mac, "profile", profile}, attrs...)...)
}

// Ignored counts a packet or request left unanswered and logs it at debug
// level (a busy network sends many that are not for us).
func (r *Recorder) Ignored(reason, mac string, attrs ...any) {
	r.ignored.WithLabelValues(reason).Inc()
	r.log.Debug("ignored", append([]any{"reason", reason, "mac", mac}, attrs...)...)
}

// Error counts and logs a failure while serving a stage.
func (r *Recorder) Error(stage Stage, mac string, err error, attrs ...any) {
	r.errors.WithLabelValues(string(stage)).Inc()
	r.log.Error("boot stage failed", append([]any{"stage", string(stage), "mac", mac, "err", err}, attrs...)...)
}

// Reload counts a profile reload; it fits FileSourceConfig.OnReload.
func (r *Recorder) Reload(ok bool) {
	if ok {
		r.reloads.WithLabelValues("ok").Inc()
	} else {
		r.reloads.WithLabelValues("rejected").Inc()
	}
}

// Sent counts file bytes sent over proto ("http" or "tftp").
func (r *Recorder) Sent(proto string, n int64) {
	r.bytes.WithLabelValues(proto).Add(float64(n))
}
