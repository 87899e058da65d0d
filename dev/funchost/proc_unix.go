//go:build unix && !linux

package funchost

import (
	"os/exec"
	"syscall"
)

// childOf starts the handler in a process group of its own: a Ctrl+C in
// the terminal reaches the host stand-in, which then kills the handler as
// the host does, instead of reaching both.
func childOf(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
