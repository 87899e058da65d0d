package dbxstandin

import (
	"net/http"
	"strings"
	"time"
)

// Fault makes matching requests fail. A request matches when its method
// (if set) and path prefix match; the fault applies Times times (0: once).
type Fault struct {
	Method     string
	PathPrefix string
	Times      int
	// Delay holds the answer back, before any failure below.
	Delay time.Duration
	// Status answers with this status and a Databricks error body;
	// 0 with Drop false answers normally after Delay.
	Status     int
	ErrorCode  string
	RetryAfter string
	// Drop closes the connection without an answer (connection reset).
	Drop bool
}

// Inject adds a fault.
func (s *Server) Inject(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault not used up.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) takeFault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			f.Times--
			if f.Times <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

// apply writes the fault; it returns false when the request should then be
// served normally (a pure delay).
func (f *Fault) apply(w http.ResponseWriter, r *http.Request) bool {
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return true
		}
	}
	switch {
	case f.Drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
					_ = tc.SetLinger(0) // reset, not a clean close
				}
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		code := f.ErrorCode
		if code == "" {
			code = map[int]string{429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR", 503: "TEMPORARILY_UNAVAILABLE"}[f.Status]
		}
		writeError(w, f.Status, code, "injected fault: "+http.StatusText(f.Status))
		return true
	}
	return false
}
