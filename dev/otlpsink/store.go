package otlpsink

import (
	"fmt"
	"time"
	"unsafe"
)

// DefaultMaxBytes is the default of Sink.MaxBytes: 64 MiB, some 65,000 of
// the stack's spans (the traces of 6,000 validate requests, or of 2,000
// notebook requests: more than anyone reads back in a session). With the
// garbage collector's headroom (GOGC=100, twice the live heap) that is at
// most some 130 MiB of a laptop's memory.
const DefaultMaxBytes = 64 << 20

// keptTrace is one trace as the sink keeps it.
type keptTrace struct {
	spans   []*Span   // in order of arrival
	data    int       // estimated bytes the spans point to (strings, maps, a share of their resource)
	updated time.Time // when its last span arrived
	printed int       // how many spans it had when it was last printed; 0 until it is
}

// size is the trace's estimated share of the heap.
func (t *keptTrace) size() int { return traceBytes + 8*cap(t.spans) + spanBytes*len(t.spans) + t.data }

// Estimated heap sizes, as Go 1.26 lays things out on 64-bit machines.
const (
	// spanBytes is a Span.
	spanBytes = (int(unsafe.Sizeof(Span{})) + 15) &^ 15
	// traceBytes is a trace's own overhead: its entry in Sink.traces and
	// Sink.order, its id (which its spans share) and the trace struct.
	traceBytes = 192
	// A map is a header and 8 slots, or for more than 8 entries a table
	// of the next power of two of slots that keeps them at most 7/8 full;
	// a slot holds a string key and an any value, and a control byte.
	mapHeader = 48
	mapTable  = 40
	mapSlot   = 36
)

// batch is spans that share one resource map (those of one resource in an
// export), with that map's estimated size.
type batch struct {
	spans    []Span
	resource int
}

// add stores batches of spans: each trace is charged its spans' estimated
// size, and the oldest traces are dropped while the total is over
// MaxBytes. It says so on Log the first time.
func (s *Sink) add(batches []batch) {
	s.mu.Lock()
	now := s.now()
	dropped := 0
	for _, b := range batches {
		share := b.resource / max(len(b.spans), 1)
		for _, sp := range b.spans {
			t := s.traces[sp.TraceID]
			if t == nil {
				t = &keptTrace{}
				s.traces[sp.TraceID] = t
				s.order = append(s.order, sp.TraceID)
			} else {
				s.bytes -= t.size()
				sp.TraceID = t.spans[0].TraceID // the spans of a trace share its id
			}
			t.spans = append(t.spans, &sp) // its own allocation, freed with its trace
			t.data += estimate(&sp) + share
			t.updated = now
			s.bytes += t.size()
		}
	}
	for s.bytes > s.MaxBytes && len(s.order) > 0 {
		id := s.order[0]
		s.order = s.order[1:]
		s.bytes -= s.traces[id].size()
		delete(s.traces, id)
		dropped++
	}
	s.dropped += dropped
	announce := dropped > 0 && s.dropped == dropped
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if announce && s.Log != nil {
		fmt.Fprintf(s.Log, "trace sink: keeping the newest traces within %s; older ones are dropped\n", sizeString(s.MaxBytes))
	}
}

// Bytes is the estimated heap the kept spans take, which MaxBytes bounds.
func (s *Sink) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Dropped is how many traces have been dropped, oldest first, to keep
// within MaxBytes.
func (s *Sink) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// estimate is the heap a span points to, besides its resource: strings
// and attribute maps. Its names, kind, status, attribute keys and event
// names are shared with other spans (see intern), and its trace id with
// its trace's, so they are not counted.
func estimate(sp *Span) int {
	n := str(sp.SpanID) + str(sp.ParentSpanID) + str(sp.TraceState) + str(sp.StatusMessage) + attrBytes(sp.Attributes)
	n += 16 * (cap(sp.Events) + cap(sp.Links))
	for _, l := range sp.Links {
		n += str(l)
	}
	return n
}

// attrBytes is a map of attributes' heap: the map and its values (the keys
// are interned).
func attrBytes(m map[string]any) int {
	if m == nil {
		return 0
	}
	n := mapBytes(len(m))
	for _, v := range m {
		n += valueBytes(v)
	}
	return n
}

// mapBytes is a map of so many entries, without what they point to.
func mapBytes(entries int) int {
	slots := 8
	for slots*7/8 < entries {
		slots *= 2
	}
	if slots > 8 {
		return mapHeader + mapTable + slots*mapSlot
	}
	return mapHeader + slots*mapSlot
}

// valueBytes is what an attribute value stored in an any takes besides
// its slot: the boxed value and what it points to.
func valueBytes(v any) int {
	switch x := v.(type) {
	case string:
		return 16 + str(x)
	case int64, float64:
		return 8
	case []byte:
		return 24 + alloc(len(x))
	case []any:
		n := 24 + 16*cap(x)
		for _, e := range x {
			n += valueBytes(e)
		}
		return n
	case map[string]any:
		return attrBytes(x)
	}
	return 0 // bool, nil: not allocated
}

// str is a string's data as allocated.
func str(s string) int { return alloc(len(s)) }

// alloc is n bytes as allocated: rounded up to 16, as the allocator's
// size classes roughly do.
func alloc(n int) int { return (n + 15) &^ 15 }

// sizeString is a size in MiB, or KiB under 1 MiB.
func sizeString(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
