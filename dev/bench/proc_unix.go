//go:build unix

package bench

import (
	"os"
	"syscall"
)

// terminate asks the handler to stop, as the host does on shutdown.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
