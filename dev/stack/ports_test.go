package stack

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestStartOnAnAddressInUse: an address in use fails Start at once, before
// the build, with a *ListenError naming the option that sets it.
func TestStartOnAnAddressInUse(t *testing.T) {
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, tc := range []struct {
		option string
		o      Options
	}{
		{"Addr", Options{Addr: held.Addr().String(), OTLPAddr: "127.0.0.1:0"}},
		{"OTLPAddr", Options{Addr: "127.0.0.1:0", OTLPAddr: held.Addr().String()}},
	} {
		t.Run(tc.option, func(t *testing.T) {
			var log bytes.Buffer
			tc.o.RepoRoot, tc.o.Log = root, &log
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := Start(ctx, tc.o)
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded on an address in use")
			}
			var lerr *ListenError
			if !errors.As(err, &lerr) || lerr.Option != tc.option || lerr.Addr != held.Addr().String() {
				t.Errorf("err = %#v, want a *ListenError for %s on %s", err, tc.option, held.Addr())
			}
			if strings.Contains(log.String(), "building the handler") {
				t.Errorf("the handler was built first:\n%s", log.String())
			}
		})
	}
}
