package appinsights

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	ingest "github.com/nbtrace/nbtrace/dev/ingestion"
)

// ingestion is the stand-in ingestion endpoint.
type ingestion = ingest.Server

type fixtureSpan struct {
	Name, Kind, TraceID, SpanID, ParentID, Status, Description string
	Start, End                                                 int64
	Attributes                                                 map[string]any
	Events                                                     []struct {
		Name       string
		Time       int64
		Attributes map[string]any
	}
	Links []struct{ TraceID, SpanID string }
}

func loadFixture(t *testing.T) (map[string]any, []sdktrace.ReadOnlySpan) {
	t.Helper()
	raw, err := os.ReadFile("testdata/spans.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Resource map[string]any
		Spans    []struct {
			fixtureSpan
			TraceID  string `json:"trace_id"`
			SpanID   string `json:"span_id"`
			ParentID string `json:"parent_id"`
			Links    []struct {
				TraceID string `json:"trace_id"`
				SpanID  string `json:"span_id"`
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(kvsOf(f.Resource)...)
	kinds := map[string]trace.SpanKind{"server": trace.SpanKindServer, "client": trace.SpanKindClient, "producer": trace.SpanKindProducer,
		"consumer": trace.SpanKindConsumer, "internal": trace.SpanKindInternal}
	var stubs tracetest.SpanStubs
	for _, s := range f.Spans {
		tid, _ := trace.TraceIDFromHex(s.TraceID)
		sid, _ := trace.SpanIDFromHex(s.SpanID)
		stub := tracetest.SpanStub{
			Name: s.Name, SpanKind: kinds[s.Kind], Resource: res,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
			StartTime:   time.Unix(0, s.Start), EndTime: time.Unix(0, s.End), Attributes: kvsOf(s.Attributes),
			InstrumentationScope: instrumentation.Scope{Name: "github.com/nbtrace/nbtrace/handler"},
		}
		if s.ParentID != "" {
			pid, _ := trace.SpanIDFromHex(s.ParentID)
			stub.Parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid, TraceFlags: trace.FlagsSampled, Remote: true})
		}
		switch s.Status {
		case "ok":
			stub.Status = sdktrace.Status{Code: codes.Ok}
		case "error":
			stub.Status = sdktrace.Status{Code: codes.Error, Description: s.Description}
		}
		for _, e := range s.Events {
			stub.Events = append(stub.Events, sdktrace.Event{Name: e.Name, Time: time.Unix(0, e.Time), Attributes: kvsOf(e.Attributes)})
		}
		for _, l := range s.Links {
			ltid, _ := trace.TraceIDFromHex(l.TraceID)
			lsid, _ := trace.SpanIDFromHex(l.SpanID)
			stub.Links = append(stub.Links, sdktrace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: ltid, SpanID: lsid})})
		}
		stubs = append(stubs, stub)
	}
	return f.Resource, stubs.Snapshots()
}

func kvsOf(m map[string]any) []attribute.KeyValue {
	var out []attribute.KeyValue
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out = append(out, attribute.String(k, x))
		case bool:
			out = append(out, attribute.Bool(k, x))
		case json.Number:
			if strings.ContainsAny(x.String(), ".eE") {
				f, _ := x.Float64()
				out = append(out, attribute.Float64(k, f))
			} else {
				n, _ := x.Int64()
				out = append(out, attribute.Int64(k, n))
			}
		}
	}
	return out
}

// TestEnvelopesMatchThePythonExporter exports the same spans with this
// exporter and with Microsoft's azure-monitor-opentelemetry-exporter, both
// to a fake ingestion endpoint, and compares the envelopes field by field.
// The differences left are explained in normalize.
func TestEnvelopesMatchThePythonExporter(t *testing.T) {
	python := filepath.Join("..", "..", ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		if os.Getenv("NBTRACE_REQUIRE_PYTHON") != "" {
			t.Fatalf("NBTRACE_REQUIRE_PYTHON is set but there is no %s (make venv)", python)
		}
		t.Skipf("the comparison needs the Python exporter: make venv")
	}
	_, spans := loadFixture(t)

	goIn, pyIn := &ingestion{}, &ingestion{}
	goSrv, pySrv := httptest.NewServer(goIn), httptest.NewServer(pyIn)
	defer goSrv.Close()
	defer pySrv.Close()

	tx := NewTransmitter(Connection{InstrumentationKey: "00000000-0000-0000-0000-0000000000aa", IngestionEndpoint: goSrv.URL + "/"}, Options{})
	if err := NewTraceExporter(tx).ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if err := tx.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(python, "testdata/python_exporter.py", "testdata/spans.json", pySrv.URL+"/")
	cmd.Env = append(os.Environ(), "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL=true",
		"APPLICATIONINSIGHTS_OPENTELEMETRY_RESOURCE_METRIC_DISABLED=true")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("the Python exporter: %v\n%s", err, out)
	}

	goEnv, pyEnv := index(t, goIn.Envelopes()), index(t, pyIn.Envelopes())
	if len(goEnv) != len(pyEnv) || len(goEnv) != len(spans)+2 {
		t.Errorf("%d envelopes from Go, %d from Python, want %d (one per span, two span events)", len(goEnv), len(pyEnv), len(spans)+2)
	}
	for key, py := range pyEnv {
		g, ok := goEnv[key]
		if !ok {
			t.Errorf("Go sent no envelope %s", key)
			continue
		}
		if diff := cmp.Diff(normalize(py, "python"), normalize(g, "go")); diff != "" {
			t.Errorf("envelope %s differs (-python +go):\n%s", key, diff)
		}
	}
}

// index keys envelopes by type and item id (events: parent and time).
func index(t *testing.T, envs []map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, e := range envs {
		switch e["name"] {
		case RequestName, DependencyName, MessageName, ExceptionName:
		default:
			// The Python exporter also reports on itself ("customer SDK
			// stats": Item_Success_Count, Item_Dropped_Count … as Metric
			// items). The Go exporter keeps those counts in its Stats
			// instead, reported in the handler's own log and metrics.
			continue
		}
		data, _ := e["data"].(map[string]any)
		base, _ := data["baseData"].(map[string]any)
		tags, _ := e["tags"].(map[string]any)
		key := e["name"].(string) + " "
		if id, ok := base["id"].(string); ok {
			key += id
		} else {
			key += tags[TagOperationParentID].(string) + "@" + e["time"].(string)
		}
		out[key] = e
	}
	return out
}

// normalize removes what differs by design, each with its reason.
func normalize(e map[string]any, from string) map[string]any {
	c := deepCopy(e)
	tags, _ := c["tags"].(map[string]any)
	// ai.internal.sdkVersion names the SDK that made the item: differs by design.
	delete(tags, TagSDKVersion)
	// The Python exporter adds ai.device.id (the host name), ai.device.locale
	// and ai.device.type "Other" to every item: properties of a client
	// device, which App Insights does not need for server telemetry; the
	// role instance already names the machine.
	for k := range tags {
		if strings.HasPrefix(k, "ai.device.") {
			delete(tags, k)
		}
	}
	// The envelope schema's "ver" (1): the Go exporter sends it as the
	// schema documents; the Python exporter leaves it out and the service
	// defaults it to 1.
	if from == "go" {
		delete(c, "ver")
	}
	return c
}

func deepCopy(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
