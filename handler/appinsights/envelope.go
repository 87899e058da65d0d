package appinsights

import (
	"fmt"
	"time"
)

// Envelope names.
const (
	RequestName    = "Microsoft.ApplicationInsights.Request"
	DependencyName = "Microsoft.ApplicationInsights.RemoteDependency"
	MessageName    = "Microsoft.ApplicationInsights.Message"
	ExceptionName  = "Microsoft.ApplicationInsights.Exception"
	MetricName     = "Microsoft.ApplicationInsights.Metric"
)

// Context tag keys.
const (
	TagOperationID       = "ai.operation.id"
	TagOperationParentID = "ai.operation.parentId"
	TagOperationName     = "ai.operation.name"
	TagCloudRole         = "ai.cloud.role"
	TagCloudRoleInstance = "ai.cloud.roleInstance"
	TagNodeName          = "ai.internal.nodeName"
	TagSDKVersion        = "ai.internal.sdkVersion"
	TagApplicationVer    = "ai.application.ver"
	TagUserAgent         = "ai.user.userAgent"
	TagLocationIP        = "ai.location.ip"
)

// Envelope is one telemetry item.
type Envelope struct {
	Ver        int               `json:"ver"`
	Name       string            `json:"name"`
	Time       string            `json:"time"`
	SampleRate float64           `json:"sampleRate,omitempty"`
	IKey       string            `json:"iKey"`
	Tags       map[string]string `json:"tags"`
	Data       Data              `json:"data"`
}

// Data holds an item's typed payload.
type Data struct {
	BaseType string `json:"baseType"`
	BaseData any    `json:"baseData"`
}

// RequestData is a Request's payload.
type RequestData struct {
	Ver          int                `json:"ver"`
	ID           string             `json:"id"`
	Name         string             `json:"name"`
	Duration     string             `json:"duration"`
	ResponseCode string             `json:"responseCode"`
	Success      bool               `json:"success"`
	URL          string             `json:"url,omitempty"`
	Source       string             `json:"source,omitempty"`
	Properties   map[string]string  `json:"properties"`
	Measurements map[string]float64 `json:"measurements"`
}

// RemoteDependencyData is a RemoteDependency's payload.
type RemoteDependencyData struct {
	Ver          int                `json:"ver"`
	Name         string             `json:"name"`
	ID           string             `json:"id"`
	ResultCode   string             `json:"resultCode"`
	Duration     string             `json:"duration"`
	Success      bool               `json:"success"`
	Data         string             `json:"data,omitempty"`
	Target       string             `json:"target,omitempty"`
	Type         string             `json:"type,omitempty"`
	Properties   map[string]string  `json:"properties"`
	Measurements map[string]float64 `json:"measurements"`
}

// MessageData is a Message's (trace's) payload.
type MessageData struct {
	Ver           int                `json:"ver"`
	Message       string             `json:"message"`
	SeverityLevel string             `json:"severityLevel,omitempty"`
	Properties    map[string]string  `json:"properties"`
	Measurements  map[string]float64 `json:"measurements"`
}

// ExceptionData is an Exception's payload.
type ExceptionData struct {
	Ver           int                `json:"ver"`
	Exceptions    []ExceptionDetails `json:"exceptions"`
	SeverityLevel string             `json:"severityLevel,omitempty"`
	Properties    map[string]string  `json:"properties"`
	Measurements  map[string]float64 `json:"measurements"`
}

// ExceptionDetails describes one exception.
type ExceptionDetails struct {
	TypeName     string `json:"typeName"`
	Message      string `json:"message"`
	HasFullStack bool   `json:"hasFullStack"`
	Stack        string `json:"stack,omitempty"`
}

// MetricsData is a Metric's payload.
type MetricsData struct {
	Ver        int               `json:"ver"`
	Metrics    []DataPoint       `json:"metrics"`
	Properties map[string]string `json:"properties"`
}

// DataPoint is one metric value, or an aggregate of many (Count, Min, Max).
type DataPoint struct {
	Name  string   `json:"name"`
	Value float64  `json:"value"`
	Count *int64   `json:"count,omitempty"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
}

// formatTime writes a time as the Python exporter does (isoformat): UTC,
// six digits of microseconds, or none when they are all zero.
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}

// formatDuration writes a duration as "d.hh:mm:ss.fff", rounded to the
// millisecond, as the Python exporter does.
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	ms := (d.Nanoseconds() + 500_000) / 1_000_000
	days := ms / 86_400_000
	ms -= days * 86_400_000
	h := ms / 3_600_000
	ms -= h * 3_600_000
	m := ms / 60_000
	ms -= m * 60_000
	s := ms / 1000
	ms -= s * 1000
	return fmt.Sprintf("%d.%02d:%02d:%02d.%03d", days, h, m, s, ms)
}

// truncate cuts s to n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
