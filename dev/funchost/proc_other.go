//go:build !unix

package funchost

import (
	"os"
	"os/exec"
)

func ownProcessGroup(*exec.Cmd) {}

// terminate stops the handler; without SIGTERM, by killing it.
func terminate(p *os.Process) { _ = p.Kill() }
