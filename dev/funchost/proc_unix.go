//go:build unix

package funchost

import (
	"os"
	"os/exec"
	"syscall"
)

// ownProcessGroup starts the handler in a process group of its own: a
// Ctrl+C in the terminal reaches the host stand-in, which then stops the
// handler in order, as the host does on shutdown, instead of reaching both.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminate asks the handler to stop (SIGTERM).
func terminate(p *os.Process) { _ = p.Signal(syscall.SIGTERM) }
