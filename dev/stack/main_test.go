package stack

import (
	"os"
	"testing"

	"github.com/nbtrace/nbtrace/dev/procs"
)

// TestMain ends the tests when go test is killed: the handlers they start
// die with this process (funchost kills them with it).
func TestMain(m *testing.M) {
	procs.OnParentExit(func() { os.Exit(3) })
	os.Exit(m.Run())
}
