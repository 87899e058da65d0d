package azurite

import (
	"os/exec"
	"syscall"
)

// childOf makes the kernel kill Azurite when the process that started it
// dies, however it dies (a killed go test or go run ./dev), and keeps a
// Ctrl+C in the terminal from reaching it before its parent stops it.
func childOf(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
