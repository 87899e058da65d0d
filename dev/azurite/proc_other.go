//go:build !linux

package azurite

import "os/exec"

// childOf does nothing here: the process that starts Azurite stops it
// (Server.Stop), and procs.OnParentExit ends that process when its own
// parent goes.
func childOf(*exec.Cmd) {}
