package collector

import (
	"bufio"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Exposition is series written by hand after a registry's: the exporter's
// Table, the coordinator's targets.
type Exposition interface {
	// WriteFormat writes the series in format.
	WriteFormat(w io.Writer, format Format) (int64, error)
	// WriteGzipFormat writes them gzip-compressed by up to workers
	// goroutines, as gzip members.
	WriteGzipFormat(w io.Writer, workers int, format Format) error
}

// ServeMetrics answers a scrape: reg's series, then x's, in expFormat (the
// text format, or OpenMetrics, which ends with "# EOF"), gzip-compressed
// on every core when the scraper accepts gzip.
func ServeMetrics(w http.ResponseWriter, r *http.Request, reg prometheus.Gatherer, x Exposition, expFormat expfmt.Format, logger *slog.Logger) {
	mfs, err := reg.Gather()
	if err != nil {
		logger.Error("Error gathering metrics", "err", err)
		if len(mfs) == 0 {
			http.Error(w, "error gathering metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	format := FormatText
	if expFormat.FormatType() == expfmt.TypeOpenMetrics {
		format = FormatOpenMetrics
	}
	w.Header().Set("Content-Type", string(expFormat))
	gzipped := acceptsGzip(r)
	var out io.Writer = w
	var gz *gzip.Writer
	if gzipped {
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = gz
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	enc := expfmt.NewEncoder(bw, expFormat)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			logger.Error("Error encoding metric family", "family", mf.GetName(), "err", err)
			return
		}
	}
	if !gzipped {
		// The registry's series go out before the hand-written ones are
		// read: a client that wants only those (the exporter's scheduler
		// counters) has them at once.
		err = bw.Flush()
		if err == nil {
			_, err = x.WriteFormat(bw, format)
		}
		if err == nil && format == FormatOpenMetrics {
			_, err = expfmt.FinalizeOpenMetrics(bw)
		}
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
	} else {
		// The registry's series form the first gzip member; the hand-
		// written ones, compressed on every core, follow as further
		// members, and OpenMetrics' "# EOF" as the last.
		if err = bw.Flush(); err == nil {
			err = gz.Close()
		}
		if err == nil {
			err = x.WriteGzipFormat(w, runtime.GOMAXPROCS(0), format)
		}
		if err == nil && format == FormatOpenMetrics {
			gz.Reset(w)
			if _, err = expfmt.FinalizeOpenMetrics(gz); err == nil {
				err = gz.Close()
			}
		}
	}
	if err != nil {
		logger.Debug("Error writing the hand-written series", "err", err)
	}
}

// acceptsGzip reports whether the request accepts gzip with a non-zero
// quality (Accept-Encoding).
func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}
