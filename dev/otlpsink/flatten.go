package otlpsink

import (
	"encoding/hex"
	"strings"
	"time"
	"unique"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

// Flatten turns an OTLP export request into spans.
func Flatten(req *coltrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, b := range flatten(req) {
		out = append(out, b.spans...)
	}
	return out
}

// flatten turns an OTLP export request into spans, a batch a resource:
// the spans of one resource share its attribute map.
func flatten(req *coltrace.ExportTraceServiceRequest) []batch {
	var out []batch
	for _, rs := range req.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		service, _ := res["service.name"].(string)
		b := batch{resource: attrBytes(res)}
		for _, ss := range rs.GetScopeSpans() {
			scope := intern(ss.GetScope().GetName())
			for _, sp := range ss.GetSpans() {
				s := Span{
					TraceID:       hex.EncodeToString(sp.GetTraceId()),
					SpanID:        hex.EncodeToString(sp.GetSpanId()),
					ParentSpanID:  hex.EncodeToString(sp.GetParentSpanId()),
					TraceState:    sp.GetTraceState(),
					Name:          intern(sp.GetName()),
					Kind:          strings.TrimPrefix(sp.GetKind().String(), "SPAN_KIND_"),
					Service:       service,
					Scope:         scope,
					Start:         time.Unix(0, int64(sp.GetStartTimeUnixNano())),
					End:           time.Unix(0, int64(sp.GetEndTimeUnixNano())),
					Attributes:    attrMap(sp.GetAttributes()),
					Resource:      res,
					StatusCode:    strings.TrimPrefix(sp.GetStatus().GetCode().String(), "STATUS_CODE_"),
					StatusMessage: sp.GetStatus().GetMessage(),
				}
				for _, e := range sp.GetEvents() {
					s.Events = append(s.Events, intern(e.GetName()))
				}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, hex.EncodeToString(l.GetTraceId())+"-"+hex.EncodeToString(l.GetSpanId()))
				}
				b.spans = append(b.spans, s)
			}
		}
		out = append(out, b)
	}
	return out
}

// intern returns the one copy of a string that recurs across spans (span
// and event names, attribute keys), so that the spans kept share it.
func intern(s string) string { return unique.Make(s).Value() }

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[intern(kv.GetKey())] = anyValue(kv.GetValue())
	}
	return m
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyValue(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrMap(x.KvlistValue.GetValues())
	}
	return nil
}
