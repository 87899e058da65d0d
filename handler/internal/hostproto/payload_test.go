package hostproto

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nbtrace/nbtrace/functions/api"
)

func TestDecodeInvocationFixtureA(t *testing.T) {
	payload, err := os.ReadFile("testdata/fixture-a-order.json")
	if err != nil {
		t.Fatal(err)
	}
	inv, req, err := DecodeInvocation(payload, "req")
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.URL != "http://localhost:7071/api/order?debug=1" {
		t.Errorf("method/url = %s %s", req.Method, req.URL)
	}
	if diff := cmp.Diff(Headers{"Host": {"localhost:7071"}, "Content-Type": {"application/json"}, "Content-Length": {"40"}}, req.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"debug": "1"}, req.Query); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	if req.Body == nil || string(*req.Body) != `{"id":1005,"quantity":2,"color":"black"}` {
		t.Errorf("body = %v", req.Body)
	}
	// Metadata scalars are JSON-encoded twice by the host.
	for key, want := range map[string]string{"color": "black", "id": "1005", "quantity": "2", "debug": "1", "COLOR": "black"} {
		if got, ok := inv.MetadataValue(key); !ok || got != want {
			t.Errorf("MetadataValue(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
	if got, _ := inv.MetadataValue("Query"); got != `{"debug":"1"}` {
		t.Errorf("MetadataValue(Query) = %s, want the object", got)
	}
	if _, ok := inv.MetadataValue("missing"); ok {
		t.Error("MetadataValue(missing) found something")
	}
}

func TestDecodeInvocationQueueFixtureD(t *testing.T) {
	payload, err := os.ReadFile("testdata/fixture-d-queue.json")
	if err != nil {
		t.Fatal(err)
	}
	// A queue trigger's value is a double-encoded string, not an HTTP
	// request: decoding it as the HTTP trigger is a clear EINVALID.
	_, _, err = DecodeInvocation(payload, "myQueueItem")
	if api.ErrorCode(err) != api.EINVALID {
		t.Errorf("err = %v, want EINVALID", err)
	}
}

func TestNewRequestBody(t *testing.T) {
	body := Body(`{"a":1}`)
	tests := []struct {
		name     string
		data     HTTPRequestData
		max      int64
		wantCode api.Code
		wantBody string
		wantLen  int64
	}{
		{"json body", HTTPRequestData{URL: "http://h/api/x", Method: "POST", Body: &body, Headers: Headers{"content-type": {"application/json"}}}, 100, "", `{"a":1}`, 7},
		{"absent body", HTTPRequestData{URL: "http://h/api/x", Method: "GET"}, 100, "", "", 0},
		{"base64 octet-stream", HTTPRequestData{URL: "http://h/api/x", Method: "POST", Body: ptr(Body("aGk=")), Headers: Headers{"Content-Type": {"application/octet-stream"}}}, 100, "", "hi", 2},
		{"bad base64", HTTPRequestData{URL: "http://h/api/x", Method: "POST", Body: ptr(Body("!!")), Headers: Headers{"Content-Type": {"multipart/form-data; boundary=x"}}}, 100, api.EINVALID, "", 0},
		{"over the limit", HTTPRequestData{URL: "http://h/api/x", Method: "POST", Body: &body}, 6, api.ETOOLARGE, "", 0},
		{"relative url", HTTPRequestData{URL: "/api/x", Method: "POST"}, 100, api.EINVALID, "", 0},
		{"bad method", HTTPRequestData{URL: "http://h/api/x", Method: "PO ST"}, 100, api.EINVALID, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.data.NewRequest(context.Background(), tt.max)
			if tt.wantCode != "" {
				if api.ErrorCode(err) != tt.wantCode {
					t.Fatalf("err = %v, want %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r.Body)
			if string(got) != tt.wantBody || r.ContentLength != tt.wantLen {
				t.Errorf("body = %q (%d), want %q (%d)", got, r.ContentLength, tt.wantBody, tt.wantLen)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzDecodeInvocation: no payload makes the decoder panic, and whatever
// it accepts rebuilds into a request or a coded error.
func FuzzDecodeInvocation(f *testing.F) {
	for _, name := range []string{"fixture-a-order.json", "fixture-d-queue.json", "echo-body.input", "echo-binary.input", "echo-legacy-headers.input", "echo-nobody.input"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "req")
	}
	f.Add([]byte(`{"Data":null}`), "req")
	f.Add([]byte(`{"Data":{"req":{"Url":"http://[::1]:x/","Method":"GET","Body":null}}}`), "req")
	f.Fuzz(func(t *testing.T, payload []byte, trigger string) {
		_, req, err := DecodeInvocation(payload, trigger)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Code != api.EINVALID {
				t.Fatalf("error %v is not an EINVALID *api.Error", err)
			}
			return
		}
		r, err := req.NewRequest(context.Background(), 1<<20)
		if err != nil {
			if c := api.ErrorCode(err); c != api.EINVALID && c != api.ETOOLARGE {
				t.Fatalf("NewRequest error %v has code %s", err, c)
			}
			return
		}
		_, _ = io.ReadAll(r.Body)
	})
}

// FuzzExtractParent: any headers give either a valid parent whose W3C form
// round-trips, or none; extraction never panics.
func FuzzExtractParent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE", "k=v", "")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "a=b,c=d", "=", "garbage")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-x", "", "", "")
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	f.Fuzz(func(t *testing.T, hostTP, state, bag, callerTP string) {
		host := http.Header{}
		host.Set("traceparent", hostTP)
		host.Set("tracestate", state)
		host.Set("baggage", bag)
		caller := http.Header{}
		caller.Set("traceparent", callerTP)
		ctx, src := ExtractParent(context.Background(), prop, host, caller)
		sc := trace.SpanContextFromContext(ctx)
		switch src {
		case FromNone:
			if sc.IsValid() {
				t.Fatal("no source but a valid span context")
			}
		case FromHost, FromCaller:
			if !sc.IsValid() || !sc.IsRemote() {
				t.Fatalf("source %s but span context %v", src, sc)
			}
			out := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), out)
			again := propagation.TraceContext{}.Extract(context.Background(), out)
			if !trace.SpanContextFromContext(again).Equal(sc.WithRemote(true)) {
				t.Fatalf("%s does not round-trip", out["traceparent"])
			}
		default:
			t.Fatalf("unknown source %q", src)
		}
	})
}
