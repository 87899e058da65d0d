package azurite

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// RequireEnv, when set (CI sets it after installing Azurite), makes a test
// that needs Azurite fail instead of skipping when it is not installed.
const RequireEnv = "NBTRACE_REQUIRE_AZURITE"

// StartForTest starts Azurite for one test and stops it when the test
// ends. Without Azurite the test is skipped, or fails under RequireEnv.
func StartForTest(tb testing.TB, root string) *Server {
	tb.Helper()
	in, err := Find(root)
	if errors.Is(err, ErrNotInstalled) && os.Getenv(RequireEnv) == "" {
		tb.Skipf("this test needs Azurite: %s (from the project's root); %s=1 makes its absence a failure", InstallCommand, RequireEnv)
	}
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, in)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("stop Azurite: %v", err)
		}
	})
	return s
}
