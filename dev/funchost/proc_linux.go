package funchost

import (
	"os/exec"
	"syscall"
)

// childOf starts the handler in a process group of its own (a Ctrl+C in
// the terminal reaches the host stand-in, which then kills the handler as
// the host does, instead of reaching both), and makes the kernel kill it
// when the stand-in dies, however it dies: no handler is left holding a
// port after a killed test or a killed go run ./dev.
func childOf(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
